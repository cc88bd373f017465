import { fail, type ErrorCode } from '../errors.js'
import { formatCapability, parseCapability, type Capability } from './capabilities.js'

/**
 * The SessionInfo body that `POST /signup`, `POST /session` and `GET /session` answer with,
 * in upstream Pubky's postcard form (pubky-common `session.rs`), fields in this order:
 * version (varint, 0), public key (32 raw bytes), created_at (varint, microseconds),
 * name and user agent (strings, always empty), then the capabilities as a varint count and
 * one `scope:actions` string each. The same postcard primitives serve the AuthToken.
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

// --- postcard primitives: varints are unsigned LEB128, strings a varint length + UTF-8 ---

const utf8 = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

export function varint(value: number | bigint): Uint8Array {
  let v = BigInt(value)
  if (v < 0n || v >= 1n << 64n) throw new RangeError('a postcard varint holds a u64')
  const out: number[] = []
  do {
    const low = Number(v & 0x7fn)
    v >>= 7n
    out.push(v === 0n ? low : low | 0x80)
  } while (v !== 0n)
  return Uint8Array.from(out)
}

export function postcardString(text: string): Uint8Array {
  const body = utf8.encode(text)
  return concat(varint(body.length), body)
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Reads postcard fields in order; every malformed input fails with the given error code. */
export class PostcardReader {
  readonly #bytes: Uint8Array
  readonly #code: ErrorCode
  #at: number

  constructor(bytes: Uint8Array, code: ErrorCode, start = 0) {
    this.#bytes = bytes
    this.#code = code
    this.#at = start
  }

  take(n: number): Uint8Array {
    if (this.#at + n > this.#bytes.length) fail(this.#code, 'Unexpected end of data')
    const out = this.#bytes.subarray(this.#at, this.#at + n)
    this.#at += n
    return out
  }

  /** A u64; overlong encodings are refused so every value has one byte form. */
  varint(): bigint {
    let value = 0n
    for (let i = 0; i < 10; i++) {
      const byte = this.take(1)[0]!
      value |= BigInt(byte & 0x7f) << BigInt(7 * i)
      if ((byte & 0x80) === 0) {
        if (byte === 0 && i > 0) fail(this.#code, 'Overlong varint')
        if (value >= 1n << 64n) fail(this.#code, 'Varint overflows u64')
        return value
      }
    }
    fail(this.#code, 'Varint longer than 10 bytes')
  }

  safeInteger(): number {
    const v = this.varint()
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(this.#code, 'Number too large')
    return Number(v)
  }

  string(): string {
    const n = this.safeInteger()
    if (n > this.#bytes.length - this.#at) fail(this.#code, 'Unexpected end of data')
    try {
      return strictUtf8.decode(this.take(n))
    } catch {
      fail(this.#code, 'Invalid UTF-8')
    }
  }

  end(): void {
    if (this.#at !== this.#bytes.length) fail(this.#code, 'Trailing bytes')
  }
}
