/**
 * z-base-32 (the alphabet Pubky names keys in): five bits per character, most significant
 * first, the last character padded with zero bits. Written here rather than taken from a
 * package so the client keeps to its three runtime dependencies; the tests check it against
 * the `z32` package byte for byte. Imports nothing.
 */
export const Z32_ALPHABET = 'ybndrfg8ejkmcpqxot1uwisza345h769'
const VALUE = new Map([...Z32_ALPHABET].map((c, i) => [c, i]))

export function z32Encode(bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xfff
    bits += 8
    while (bits >= 5) {
      out += Z32_ALPHABET[(value >> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += Z32_ALPHABET[(value << (5 - bits)) & 31]
  return out
}

/**
 * The bytes of `text`, floor(5·n/8) of them (the padding bits are dropped, so a caller that
 * wants the canonical encoding encodes the result again and compares), or undefined for a
 * character outside the alphabet.
 */
export function z32Decode(text: string): Uint8Array | undefined {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8))
  let bits = 0
  let value = 0
  let at = 0
  for (const c of text) {
    const v = VALUE.get(c)
    if (v === undefined) return undefined
    value = ((value << 5) | v) & 0xfff
    bits += 5
    if (bits >= 8) {
      out[at++] = (value >> (bits - 8)) & 0xff
      bits -= 8
    }
  }
  return out
}
