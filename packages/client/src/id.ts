/**
 * Event ids (SPEC §5): the seq as 8 bytes big-endian, in Crockford base32 without padding. 64
 * bits take 13 characters of 5 bits; the last character carries one zero padding bit, so ids
 * are fixed-width and sort as their numbers do. The one codec, used by the server, the client
 * entry point and the browser viewer, which loads this file as it is: it imports nothing.
 */
/** Crockford's base32 alphabet, which ids and consumer ids (ULIDs) are written in */
export const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** Each character code's value in the alphabet, -1 for the rest (codes past 127 are none). */
const VALUE = new Int8Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i
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

/**
 * Strict: exactly 13 characters of the alphabet, the last one's padding bit zero. Acks name
 * events by the hundred per request, so this takes no BigInt step but the last: the first
 * three characters are the top 15 of the 65 bits and the other ten the low 50, each exact in a
 * double.
 */
export function seqOfId(id: string): bigint | undefined {
  if (id.length !== ID_LENGTH) return undefined
  let high = 0
  let low = 0
  for (let i = 0; i < ID_LENGTH; i++) {
    const code = id.charCodeAt(i)
    const v = code < 128 ? VALUE[code]! : -1
    if (v < 0) return undefined
    if (i < 3) high = high * 32 + v
    else low = low * 32 + v
  }
  if (low % 2 !== 0) return undefined
  // the seq is (high·2^50 + low) / 2: a safe integer while high < 16
  return high < 16 ? BigInt(high * 2 ** 49 + low / 2) : (BigInt(high) << 49n) + BigInt(low / 2)
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
