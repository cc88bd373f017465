import { covers, type Capability } from '../auth/capabilities.js'
import type { HearthEvent } from '../events/event.js'
import { PRIVATE_ROOT, PUBLIC_ROOT, isPrivatePath } from '../paths.js'

/*
 * The one home of the `/priv/` rule (SPEC §2, §6.3). A public event is for everyone. A private
 * event is for one viewer only: its owner's own session, with a read capability covering the
 * path, on a stream that follows that owner alone; and the admin, who holds the password. Every
 * feed (`/subscribe`, `/events-stream` forward and reverse, its admin form, `/events/`) asks a
 * `CanSee`, built once when the stream opens.
 */

/** A session, as far as visibility goes. */
export interface Viewer {
  readonly user: string
  readonly capabilities: readonly Capability[]
}

export type Seen = Pick<HearthEvent, 'user' | 'path'>
export type CanSee = (ev: Seen) => boolean

export function isPrivate(ev: Pick<HearthEvent, 'path'>): boolean {
  return isPrivatePath(ev.path)
}

export function canSee(ev: Seen, viewer: Viewer | undefined): boolean {
  if (!isPrivate(ev)) return true
  return viewer !== undefined && viewer.user === ev.user && covers(viewer.capabilities, ev.path, 'r')
}

/** What a stream with no viewer (no session, or several users) may see. */
export const publicOnly: CanSee = (ev) => !isPrivate(ev)

/**
 * The admin's view (the firehose behind `ADMIN_PASSWORD`): every event, `/priv/` included.
 * No stream a user's session or no session opens is given it.
 */
export const everything: CanSee = () => true

/**
 * What part of one user's index a stream reads: only the public part when it may see nothing
 * private (so no read, page boundary, write or pause of its stream depends on private events),
 * all of it for its owner's session.
 */
export function readsUnder(see: CanSee): string | undefined {
  return see === publicOnly ? PUBLIC_ROOT : undefined
}

/**
 * Built once per stream: `session` is the one behind the request's cookie for `onlyUser`, the
 * one user every filter of the stream names (undefined when they name several, or anyone).
 * A session under that name that belongs to someone else sees nothing private.
 */
export function visibility(session: Viewer | undefined, onlyUser: string | undefined): CanSee {
  if (session === undefined || onlyUser === undefined || session.user !== onlyUser || !readsPrivate(session)) return publicOnly
  return (ev) => canSee(ev, session)
}

/**
 * Whether `viewer` may see every private event `other` may: the same user, and a read
 * capability covering the private part of each of `other`'s that reads under `/priv/` (all of
 * `/priv/` for one over it, such as `/`).
 */
export function seesAllOf(viewer: Viewer, other: Viewer): boolean {
  return viewer.user === other.user && other.capabilities.every((c) => !readsUnderPrivate(c) ||
    covers(viewer.capabilities, PRIVATE_ROOT.startsWith(c.scope) ? PRIVATE_ROOT : c.scope, 'r'))
}

/** Whether any of the session's capabilities reads something under `/priv/`. */
function readsPrivate(session: Viewer): boolean {
  return session.capabilities.some(readsUnderPrivate)
}

function readsUnderPrivate(c: Capability): boolean {
  return c.actions.includes('r') && (isPrivatePath(c.scope) || PRIVATE_ROOT.startsWith(c.scope))
}
