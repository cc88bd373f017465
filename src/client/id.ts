import base32Encode from 'base32-encode'

/**
 * Event ids as the homeserver writes them: a seq as 8 bytes big-endian in Crockford base32,
 * 13 characters, so ids sort as their numbers do. Kept here, apart from the server's copy,
 * because the client entry point imports nothing from the server.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
const VALUE = new Map([...ALPHABET].map((c, i) => [c, i]))
const ID_LENGTH = 13
const MAX_SEQ = (1n << 64n) - 1n

export function idOf(seq: bigint): string {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, seq)
  return base32Encode(bytes, 'Crockford')
}

/** Strict: 13 characters of the alphabet with a zero padding bit. */
export function seqOfId(id: string): bigint | undefined {
  if (id.length !== ID_LENGTH) return undefined
  let n = 0n
  for (const c of id) {
    const v = VALUE.get(c)
    if (v === undefined) return undefined
    n = (n << 5n) | BigInt(v)
  }
  return n & 1n ? undefined : n >> 1n
}

/** A cursor as `/subscribe` takes it: 13 characters is an id, anything else decimal. */
export function parseCursor(text: string): bigint | undefined {
  if (text.length === ID_LENGTH) return seqOfId(text)
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) return undefined
  const n = BigInt(text)
  return n <= MAX_SEQ ? n : undefined
}
