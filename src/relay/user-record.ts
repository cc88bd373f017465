import { parsePayload, PacketError } from '../pkarr/packet.js'
import { decodeSvcb, TYPE_HTTPS, TYPE_SVCB } from '../pkarr/dns.js'
import { relayUrl } from '../pkarr/publisher.js'
import { decodePublicKey, Z32_KEY } from '../shared/keys.js'

/** How long one pkarr relay may take to answer a lookup. */
const LOOKUP_MS = 5000

/** Why a user's homeserver is not known: a fixed set, so it can be a metric label. */
export type UnresolvedReason = 'no-record' | 'invalid-record' | 'no-homeserver' | 'unreachable' | 'refused-address' | 'limit'

export const UNRESOLVED_REASONS: readonly UnresolvedReason[] = ['no-record', 'invalid-record', 'no-homeserver', 'unreachable', 'refused-address', 'limit']

export class ResolveError extends Error {
  constructor(readonly reason: UnresolvedReason, message: string) {
    super(message)
  }
}

/** A user's homeserver, as the user's own signed record names it. */
export interface UserRecord {
  homeserver: string
  /** seconds the record may be kept, as published */
  ttl: number
}

/**
 * Reads the homeserver a user's pkarr record names: the `_pubky` HTTPS (or SVCB) record that
 * the official client publishes at sign-up, whose target is the homeserver's key. The packet's
 * signature is checked against the user's key, so no relay in between can name another
 * homeserver. The first relay holding a valid packet wins; a relay that answers 404 says the
 * record does not exist there.
 */
export async function resolveUserRecord(user: string, relays: readonly string[], signal: AbortSignal): Promise<UserRecord> {
  const key = decodePublicKey(user)
  if (key === undefined) throw new ResolveError('invalid-record', `${user} is not a public key`)
  if (relays.length === 0) throw new ResolveError('unreachable', 'no pkarr relays to read records from (PKARR_RELAYS or --testnet)')
  let worst: ResolveError | undefined
  for (const relay of relays) {
    try {
      const res = await fetch(relayUrl(relay, user), { signal: AbortSignal.any([signal, AbortSignal.timeout(LOOKUP_MS)]), redirect: 'manual' })
      if (res.status === 404) throw new ResolveError('no-record', `no pkarr record for ${user}`)
      if (!res.ok) throw new ResolveError('unreachable', `a pkarr relay answered ${res.status}`)
      const payload = new Uint8Array(await res.arrayBuffer())
      return homeserverOf(user, key, payload)
    } catch (err) {
      if (signal.aborted) throw err
      const e = err instanceof ResolveError ? err : new ResolveError('unreachable', `a pkarr relay could not be read: ${(err as Error).message}`)
      // a relay that has a bad packet or none does not hide a good one on the next relay
      if (worst === undefined || rank(e.reason) > rank(worst.reason)) worst = e
    }
  }
  throw worst!
}

/** The more telling reason wins when relays disagree: a record that is there but wrong, over none. */
function rank(reason: UnresolvedReason): number {
  return ['unreachable', 'no-record', 'no-homeserver', 'invalid-record'].indexOf(reason)
}

function homeserverOf(user: string, key: Uint8Array, payload: Uint8Array): UserRecord {
  let packet
  try {
    packet = parsePayload(key, payload)
  } catch (err) {
    const why = err instanceof PacketError ? err.message : 'unreadable'
    throw new ResolveError('invalid-record', `the pkarr record of ${user} does not verify (${why})`)
  }
  const names = new Set(['_pubky', `_pubky.${user}`])
  for (const rr of packet.message.answers) {
    if ((rr.type !== TYPE_HTTPS && rr.type !== TYPE_SVCB) || !names.has(rr.name.toLowerCase())) continue
    let target: string
    try {
      target = decodeSvcb(packet.dns, rr.offset, rr.rdata.length).target.replace(/\.$/, '')
    } catch {
      throw new ResolveError('invalid-record', `the _pubky record of ${user} is malformed`)
    }
    if (!Z32_KEY.test(target) || decodePublicKey(target) === undefined) {
      throw new ResolveError('no-homeserver', `the _pubky record of ${user} names no homeserver key`)
    }
    return { homeserver: target, ttl: rr.ttl }
  }
  throw new ResolveError('no-homeserver', `the pkarr record of ${user} has no _pubky record`)
}
