import { fail, type ErrorCode } from '../errors.js'

/**
 * Postcard, the serde format upstream Pubky uses for AuthTokens and SessionInfo: unsigned
 * LEB128 varints, and strings as a varint length followed by UTF-8.
 */

export { concat } from 'hearth-homeserver-client/bytes'
export { postcardString, varint } from 'hearth-homeserver-client/postcard'

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

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
