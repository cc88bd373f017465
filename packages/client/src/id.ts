/**
 * Event ids (SPEC §5): the seq as 8 bytes big-endian, in Crockford base32 without padding. 64
 * bits take 13 characters of 5 bits; the last character carries one zero padding bit, so ids
 * are fixed-width and sort as their numbers do. The one codec, used by the server, the client
 * entry point and the browser viewer, which loads this file as it is: it imports nothing.
 */
/** Crockford's base32 alphabet, which ids and consumer ids (ULIDs) are written in */
export const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
const VALUE = new Map([...ALPHABET].map((c, i) => [c, i]))
export const ID_LENGTH = 13
export const MAX_SEQ = (1n << 64n) - 1n

/**
 * The id of a seq. Every seq a log reaches is a safe integer, and replays encode one id per
 * event they send, so those take a path without BigInt: the 65-bit value seq·2 (the padding
 * bit appended) is exact in a double, and so is each division by 32. Anything else takes the
 * general path, which also refuses what is not a u64.
 */
export function idOf(seq: bigint | number): string {
  if (typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0) {
    let v = seq * 2
    let out = ''
    for (let i = 0; i < ID_LENGTH; i++) {
      const digit = v % 32
      out = ALPHABET[digit]! + out
      v = (v - digit) / 32
    }
    return out
  }
  const n = BigInt(seq)
  if (n < 0n || n > MAX_SEQ) throw new RangeError(`not a u64: ${seq}`)
  // 65 bits: the seq, then the zero padding bit; five bits per character, most significant first
  let v = n << 1n
  let out = ''
  for (let i = 0; i < ID_LENGTH; i++) {
    out = ALPHABET[Number(v & 31n)]! + out
    v >>= 5n
  }
  return out
}

/** Strict: exactly 13 characters of the alphabet, the last one's padding bit zero. */
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

/** A cursor as `/subscribe` takes it: 13 characters is an id, anything else is decimal. */
export function parseCursor(text: string): bigint | undefined {
  if (text.length === ID_LENGTH) return seqOfId(text)
  return parseDecimal(text)
}

/** A u64 in plain decimal: digits only, no sign, no leading zeros beyond `0` itself. */
export function parseDecimal(text: string): bigint | undefined {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) return undefined
  const n = BigInt(text)
  return n <= MAX_SEQ ? n : undefined
}
