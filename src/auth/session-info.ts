import { fail } from '../errors.js'
import { concat, PostcardReader, postcardString, varint } from './postcard.js'
import { formatCapability, parseCapability, type Capability } from './capabilities.js'

/**
 * The SessionInfo body that `POST /signup`, `POST /session` and `GET /session` answer with,
 * in upstream Pubky's postcard form (pubky-common `session.rs`), fields in this order:
 * version (varint, 0), public key (32 raw bytes), created_at (varint, microseconds),
 * name and user agent (strings, always empty), then the capabilities as a varint count and
 * one `scope:actions` string each.
 */
export interface SessionInfo {
  publicKey: Uint8Array
  /** Microseconds since the epoch. */
  createdAt: number
  capabilities: readonly Capability[]
  name?: string
  userAgent?: string
}

export function encodeSessionInfo(info: SessionInfo): Uint8Array {
  if (info.publicKey.length !== 32) throw new RangeError('a public key is 32 bytes')
  return concat(
    varint(0),
    info.publicKey,
    varint(info.createdAt),
    postcardString(info.name ?? ''),
    postcardString(info.userAgent ?? ''),
    varint(info.capabilities.length),
    ...info.capabilities.map((c) => postcardString(formatCapability(c))),
  )
}

export function decodeSessionInfo(bytes: Uint8Array): SessionInfo {
  const r = new PostcardReader(bytes, 'BadRequest')
  if (r.varint() !== 0n) fail('BadRequest', 'Unknown SessionInfo version')
  const publicKey = Uint8Array.from(r.take(32))
  const createdAt = r.safeInteger()
  const name = r.string()
  const userAgent = r.string()
  const capabilities: Capability[] = []
  for (let n = r.safeInteger(); n > 0; n--) capabilities.push(parseCapability(r.string()))
  r.end()
  return { publicKey, createdAt, name, userAgent, capabilities }
}


