import type { LogEvent } from '../client/events.js'
import { eventUri } from '../events/event.js'
import { isPrivatePath, storedPathProblem } from '../paths.js'
import { decodePublicKey } from '../shared/keys.js'
import type { OriginEvent } from './ingest.js'

/** base64 of a 32-byte blake3 hash */
const CONTENT_HASH = /^[A-Za-z0-9+/]{43}=$/

/**
 * An upstream's event as the relay will store it, or what is wrong with it. The relay takes
 * nothing on trust: an event no homeserver could have written (a bad key or path, a private
 * path in a public feed, a PUT without its hash) is refused before it reaches the log.
 */
export function checkOriginEvent(ev: LogEvent, homeserver: string): OriginEvent | string {
  if (decodePublicKey(ev.user) === undefined) return `an event for ${JSON.stringify(ev.user.slice(0, 60))}, which is not a public key`
  const problem = storedPathProblem(ev.path)
  if (problem !== undefined) return `an event for a path that cannot be stored (${problem})`
  if (isPrivatePath(ev.path)) return 'a private event in a public feed'
  if (ev.uri !== eventUri(ev)) return `an event whose uri ${JSON.stringify(ev.uri.slice(0, 200))} is not its user and path`
  if (!Number.isSafeInteger(ev.ts) || ev.ts < 0) return `an event with the time ${ev.ts}`
  const originSeq = Number(ev.seq)
  if (!Number.isSafeInteger(originSeq)) return `an event with seq ${ev.seq}, beyond what this relay counts`
  const base = { type: ev.type, user: ev.user, path: ev.path, ts: ev.ts, homeserver, originSeq }
  if (ev.type === 'DEL') return base
  if (ev.contentHash === undefined || !CONTENT_HASH.test(ev.contentHash) || ev.size === undefined) {
    return 'a PUT without a content hash and size'
  }
  return { ...base, contentHash: ev.contentHash, size: ev.size }
}
