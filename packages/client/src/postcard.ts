import { concat } from './bytes.js'

/**
 * Postcard's writing side (the serde format upstream Pubky uses for AuthTokens and
 * SessionInfo): unsigned LEB128 varints, and strings as a varint length followed by UTF-8.
 * The reading side, which answers malformed input with the server's errors, is the
 * server's. Imports nothing but bytes.js.
 */

const utf8 = new TextEncoder()

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
