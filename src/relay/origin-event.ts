import type { LogEvent } from 'hearth-homeserver-client'
import { eventUri } from '../events/event.js'
import { isPrivatePath, storedPathProblem } from '../paths.js'
import { decodePublicKey } from '../shared/keys.js'
import type { OriginEvent } from './ingest.js'

/** How far ahead of this relay's clock an origin's clock may be: a homeserver stamps its commit time. */
const CLOCK_SKEW_MS = 24 * 3600_000
/** The largest file an event may describe: far above any homeserver's MAX_BODY (1 TiB). */
const MAX_FILE_SIZE = 2 ** 40

/** base64 of a 32-byte blake3 hash */
const CONTENT_HASH = /^[A-Za-z0-9+/]{43}=$/

/**
 * An upstream's event as the relay will store it, or what is wrong with it. The relay takes
 * nothing on trust: an event no homeserver could have written (a bad key or path, a private
 * path in a public feed, a PUT without its hash or with an impossible size, a time in the
 * future) is refused before it reaches the log.
 */
export function checkOriginEvent(ev: LogEvent, homeserver: string, now = Date.now()): OriginEvent | string {
  if (decodePublicKey(ev.user) === undefined) return `an event for ${JSON.stringify(ev.user.slice(0, 60))}, which is not a public key`
  const problem = storedPathProblem(ev.path)
  if (problem !== undefined) return `an event for a path that cannot be stored (${problem})`
  if (isPrivatePath(ev.path)) return 'a private event in a public feed'
  if (ev.uri !== eventUri(ev)) return `an event whose uri ${JSON.stringify(ev.uri.slice(0, 200))} is not its user and path`
  if (!Number.isSafeInteger(ev.ts) || ev.ts < 0 || ev.ts > now + CLOCK_SKEW_MS) return `an event with the time ${ev.ts}`
  const originSeq = Number(ev.seq)
  if (!Number.isSafeInteger(originSeq)) return `an event with seq ${ev.seq}, beyond what this relay counts`
  const base = { type: ev.type, user: ev.user, path: ev.path, ts: ev.ts, homeserver, originSeq }
  if (ev.type === 'DEL') return base
  if (ev.contentHash === undefined || !CONTENT_HASH.test(ev.contentHash) || ev.size === undefined) {
    return 'a PUT without a content hash and size'
  }
  if (!Number.isSafeInteger(ev.size) || ev.size < 0 || ev.size > MAX_FILE_SIZE) return `a PUT of ${ev.size} bytes`
  return { ...base, contentHash: ev.contentHash, size: ev.size }
}
