import { ALPHABET } from './id.js'

/**
 * A consumer's id (SPEC §12): a ULID the client makes, so an app can name a consumer before it
 * ever reaches the server. 26 Crockford base32 characters: 48 bits of milliseconds since the
 * epoch (10 characters), then 80 random bits (16). Written here, not taken from a package, to
 * keep the client at three dependencies; it is a dozen lines over the id alphabet.
 */
export function newConsumerId(now: number = Date.now(), random: Uint8Array = crypto.getRandomValues(new Uint8Array(10))): string {
  if (!Number.isSafeInteger(now) || now < 0 || now >= 2 ** 48) throw new RangeError('a ULID holds 48 bits of milliseconds')
  if (random.length !== 10) throw new RangeError('a ULID holds 80 random bits')
  let time = ''
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = ALPHABET[t % 32]! + time
  let bits = 0n
  for (const byte of random) bits = (bits << 8n) | BigInt(byte)
  let rest = ''
  for (let i = 0; i < 16; i++, bits >>= 5n) rest = ALPHABET[Number(bits & 31n)]! + rest
  return time + rest
}
