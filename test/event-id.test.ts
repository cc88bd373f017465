import t from 'tap'
import base32Encode from 'base32-encode'
import { idOf, parseCursor, parseDecimal, seqOfId } from 'hearth-homeserver-client/id'

/** SPEC §5 literally: base32-encode of the seq as 8 bytes big-endian, Crockford alphabet. */
function reference(seq: bigint): string {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, seq)
  return base32Encode(bytes, 'Crockford')
}

t.test('ids: 8 bytes big-endian in Crockford base32, 13 characters, sorting as numbers', async (t) => {
  t.equal(idOf(1), '0000000000002')
  t.equal(idOf(32), '0000000000020')
  t.equal(idOf(2 ** 53 - 1), '00FZZZZZZZZZY')
  t.equal(idOf((1n << 64n) - 1n), 'ZZZZZZZZZZZZY')
  const seqs = [0, 1, 2, 31, 32, 1023, 1024, 2 ** 40, Number.MAX_SAFE_INTEGER]
  const ids = seqs.map((s) => idOf(s))
  t.same([...ids].sort(), ids, 'lexical order is numeric order')
  for (const s of seqs) t.equal(seqOfId(idOf(s)), BigInt(s), `round trip ${s}`)
  t.equal(seqOfId('ZZZZZZZZZZZZY'), (1n << 64n) - 1n, 'round trip 2^64-1')
})

t.test('both paths give what SPEC §5 defines', async (t) => {
  // a number that is a safe integer takes the path without BigInt; a bigint, the general one
  const safe = [0, 1, 13, 31, 32, 255, 256, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]
  for (let i = 0; i < 2000; i++) safe.push(Math.floor(Math.random() * 2 ** (Math.random() * 53)))
  const wrongSafe = safe.filter((seq) => idOf(seq) !== reference(BigInt(seq)))
  t.same(wrongSafe, [], 'safe integers')
  const wide = [...safe.map(BigInt), (1n << 53n) + 1n, 1n << 63n, (1n << 64n) - 2n, (1n << 64n) - 1n]
  for (let i = 0; i < 200; i++) wide.push(BigInt.asUintN(64, BigInt(Math.floor(Math.random() * 2 ** 32)) << BigInt(i % 33)))
  const wrongWide = wide.filter((seq) => idOf(seq) !== reference(seq))
  t.same(wrongWide, [], 'bigints up to 2^64-1')
  t.equal(idOf(2 ** 53), reference(1n << 53n), 'a number past the safe range takes the general path')
  // decoding: the seqs that fit a double's 53 bits exactly, and those past them
  const wrongBack = wide.filter((seq) => seqOfId(reference(seq)) !== seq)
  t.same(wrongBack, [], 'each id decodes to its seq')
})

t.test('only a u64 has an id', async (t) => {
  t.throws(() => idOf(-1), RangeError, 'no negative seq')
  t.throws(() => idOf(-1n), RangeError, 'no negative bigint')
  t.throws(() => idOf(1.5), RangeError, 'no fraction')
  t.throws(() => idOf(Number.NaN), RangeError, 'no NaN')
  t.throws(() => idOf(1n << 64n), RangeError, 'nothing past u64')
  t.throws(() => idOf(2 ** 64), RangeError, 'no number past u64 either')
})

t.test('decoding is strict', async (t) => {
  t.equal(seqOfId('ZZZZZZZZZZZZZ'), undefined, 'a set padding bit')
  t.equal(seqOfId('000000000002'), undefined, '12 characters')
  t.equal(seqOfId('00000000000002'), undefined, '14 characters')
  t.equal(seqOfId('000000000000I'), undefined, 'a letter outside the alphabet')
  t.equal(seqOfId('000000000000u'), undefined, 'lower case')
  t.equal(seqOfId('0000000000001'), undefined, 'an odd last character')
})

t.test('cursors: 13 characters are an id, anything else decimal', async (t) => {
  t.equal(parseCursor('0000000000020'), 32n)
  t.equal(parseCursor('32'), 32n)
  t.equal(parseCursor('0'), 0n)
  t.equal(parseCursor('18446744073709551615'), (1n << 64n) - 1n)
  t.equal(parseCursor('18446744073709551616'), undefined, 'past u64')
  for (const bad of ['', '-1', '+1', '01', '1e3', ' 1', 'abc']) t.equal(parseDecimal(bad), undefined, JSON.stringify(bad))
})
