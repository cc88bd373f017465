import { concat } from 'hearth-homeserver-client/bytes'
/**
 * Pkarr signed packets: `signature(64) | timestamp(u64 BE, microseconds) | DNS message`, the
 * signature covering the BEP44 text `3:seqi<ts>e1:v<len>:<dns>`. The homeserver publishes one
 * HTTPS record under its own key so the official client can find its host and HTTP port.
 */
import { encodePublicKey, keypairFromSecret, sign, verify } from '../auth/keys.js'
import {
  CLASS_IN, TYPE_HTTPS, decodeMessage, decodeSvcb, encodeMessage, encodeSvcb, type Message,
} from './dns.js'

/** pkarr's reserved SvcParam key telling browsers the plain HTTP port of a localhost target */
export const HTTP_PORT_PARAM = 65280
/** SvcParam key 3, the standard port parameter of RFC 9460 */
export const PORT_PARAM = 3
/** upstream's homeserver records live for an hour */
export const HOMESERVER_TTL = 3600
export const MAX_DNS_BYTES = 1000
export const HEADER_BYTES = 72
export const MAX_PAYLOAD_BYTES = HEADER_BYTES + MAX_DNS_BYTES

export class PacketError extends Error {
  override name = 'PacketError'
}

export interface HomeserverRecord {
  host: string
  port: number
  ttl?: number
}

/** The DNS message: one HTTPS record, named by the full key, pointing at `host`. */
export function homeserverDns(z32: string, record: HomeserverRecord): Uint8Array {
  const port = new Uint8Array(2)
  new DataView(port.buffer).setUint16(0, record.port)
  const rdata = encodeSvcb({ priority: 1, target: record.host, params: new Map([[HTTP_PORT_PARAM, port]]) })
  return encodeMessage([{ name: z32, type: TYPE_HTTPS, class: CLASS_IN, ttl: record.ttl ?? HOMESERVER_TTL, rdata }])
}

export function signable(timestamp: bigint, dns: Uint8Array): Uint8Array {
  return concat(new TextEncoder().encode(`3:seqi${timestamp}e1:v${dns.length}:`), dns)
}

export function nowMicros(): bigint {
  return BigInt(Date.now()) * 1000n
}

/** The relay payload for `dns`, signed with `secretKey` at `timestamp` (microseconds). */
export function signPacket(secretKey: Uint8Array, dns: Uint8Array, timestamp = nowMicros()): Uint8Array<ArrayBuffer> {
  if (dns.length > MAX_DNS_BYTES) throw new PacketError(`DNS packet is ${dns.length} bytes, over ${MAX_DNS_BYTES}`)
  if (timestamp < 0n || timestamp >= 1n << 64n) throw new PacketError('timestamp out of u64 range')
  const out = new Uint8Array(HEADER_BYTES + dns.length)
  out.set(sign(signable(timestamp, dns), secretKey), 0)
  new DataView(out.buffer).setBigUint64(64, timestamp)
  out.set(dns, HEADER_BYTES)
  return out
}

export interface SignedHomeserverPacket {
  z32: string
  timestamp: bigint
  payload: Uint8Array<ArrayBuffer>
}

export function homeserverPacket(secretKey: Uint8Array, record: HomeserverRecord, timestamp = nowMicros()): SignedHomeserverPacket {
  const { z32 } = keypairFromSecret(secretKey)
  return { z32, timestamp, payload: signPacket(secretKey, homeserverDns(z32, record), timestamp) }
}

export interface ParsedPacket {
  signature: Uint8Array
  timestamp: bigint
  dns: Uint8Array
  message: Message
}

/** Reads a relay payload for `publicKey`, verifying its size, signature and DNS encoding. */
export function parsePayload(publicKey: Uint8Array, payload: Uint8Array): ParsedPacket {
  if (payload.length < HEADER_BYTES + 12) throw new PacketError('payload too short')
  if (payload.length > MAX_PAYLOAD_BYTES) throw new PacketError('payload too large')
  const signature = payload.slice(0, 64)
  const timestamp = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getBigUint64(64)
  const dns = payload.slice(HEADER_BYTES)
  if (!verify(signature, signable(timestamp, dns), publicKey)) throw new PacketError('invalid signature')
  let message: Message
  try {
    message = decodeMessage(dns)
  } catch (e) {
    throw new PacketError(`invalid DNS packet: ${(e as Error).message}`)
  }
  return { signature, timestamp, dns, message }
}

export interface ResolvedEndpoint {
  priority: number
  target: string
  ttl: number
  /** from SvcParam 65280, the port a client uses for plain HTTP to a localhost target */
  httpPort?: number
  /** from SvcParam 3 */
  port?: number
}

/** HTTPS records at the apex (named by the key itself), lowest priority first. */
export function apexEndpoints(publicKey: Uint8Array, packet: ParsedPacket): ResolvedEndpoint[] {
  const z32 = encodePublicKey(publicKey)
  const u16 = (v: Uint8Array | undefined) => (v?.length === 2 ? (v[0]! << 8) | v[1]! : undefined)
  return packet.message.answers
    .filter((rr) => rr.type === TYPE_HTTPS && [z32, '.', '@'].includes(rr.name.toLowerCase()))
    .map((rr) => {
      const svcb = decodeSvcb(packet.dns, rr.offset, rr.rdata.length)
      return {
        priority: svcb.priority,
        target: svcb.target,
        ttl: rr.ttl,
        httpPort: u16(svcb.params.get(HTTP_PORT_PARAM)),
        port: u16(svcb.params.get(PORT_PARAM)),
      }
    })
    .sort((a, b) => a.priority - b.priority)
}

/** True when packet `a` should replace `b`: later timestamp, or on a tie the larger DNS bytes. */
export function isMoreRecent(a: { timestamp: bigint; dns: Uint8Array }, b: { timestamp: bigint; dns: Uint8Array }): boolean {
  if (a.timestamp !== b.timestamp) return a.timestamp > b.timestamp
  return Buffer.compare(a.dns, b.dns) > 0
}
