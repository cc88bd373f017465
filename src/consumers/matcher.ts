import type { HearthEvent } from '../events/event.js'
import { parseCapabilities } from '../auth/capabilities.js'
import { fail } from '../errors.js'
import { canSee, seesAllOf, type CanSee, type Viewer } from '../feed/visibility.js'
import type { ConsumerRecord } from '../kv/store.js'
import { filterMatches, parseFilters } from '../subscriptions/filter.js'

/** What a consumer carries: the events its filters match, among those it may see. */
export interface Matcher {
  canSee: CanSee
  accepts: (ev: HearthEvent) => boolean
}

type Carrying = Pick<ConsumerRecord, 'owner' | 'capabilities' | 'definition'>

/**
 * Whom a consumer sees as (the `/priv/` rule of src/feed/visibility.ts): its owner, with the
 * capabilities of the session which created it, so it may carry the owner's `/priv/` events
 * that session could read, never anyone else's (SPEC §12). A consumer that shares its
 * progress carries public events only: anyone may ask it `acked`, and its ack floor, which
 * stops before the first event not done, would tell them where the owner's private ones lie.
 */
function viewerOf(record: Carrying): Viewer {
  return { user: record.owner, capabilities: record.definition.shareProgress ? [] : parseCapabilities(record.capabilities) }
}

/**
 * Whether `session` may use the consumer: only when it may see every `/priv/` event the
 * consumer may carry, since its events, dead letters and state (an ack floor that stops
 * before a private event) tell of them. Another session of the owner with fewer capabilities
 * gets 403 on every route of the consumer, and the list leaves it out.
 */
export function mayRead(record: Carrying, session: Viewer): boolean {
  return seesAllOf(session, viewerOf(record))
}

/** 403 unless `session` may use the consumer (`mayRead`). */
export function checkReadable(record: Carrying, session: Viewer): void {
  if (!mayRead(record, session)) fail('Forbidden', 'This session may not read all the /priv/ events the consumer may carry')
}

export function matcherOf(record: Carrying): Matcher {
  const filters = parseFilters(record.definition.filters)
  const viewer = viewerOf(record)
  return {
    canSee: (ev) => canSee(ev, viewer),
    accepts: (ev) => filters.some((f) => filterMatches(f, ev)),
  }
}
