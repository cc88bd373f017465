import t from 'tap'
import base32Encode from 'base32-encode'
import { decodeId, encodeId, parseCursor, parseDecimal } from '../src/events/id.js'

t.test('ids: 8 bytes big-endian in Crockford base32, 13 characters, sorting as numbers', async (t) => {
  t.equal(encodeId(1), '0000000000002')
  t.equal(encodeId(32), '0000000000020')
  t.equal(encodeId((1n << 64n) - 1n), 'ZZZZZZZZZZZZY')
  const seqs = [0, 1, 2, 31, 32, 1023, 1024, 2 ** 40, Number.MAX_SAFE_INTEGER]
  const ids = seqs.map(encodeId)
  t.same([...ids].sort(), ids, 'lexical order is numeric order')
  for (const s of seqs) t.equal(decodeId(encodeId(s)), BigInt(s), `round trip ${s}`)
})

t.test('the codec gives what SPEC §5 defines: base32-encode(8 bytes big-endian, Crockford)', async (t) => {
  const seqs = [0n, 1n, 13n, 255n, 256n, (1n << 53n) + 1n, (1n << 63n), (1n << 64n) - 2n]
  for (let i = 0; i < 200; i++) seqs.push(BigInt.asUintN(64, BigInt(Math.floor(Math.random() * 2 ** 32)) << BigInt(i % 33)))
  for (const seq of seqs) {
    const bytes = new Uint8Array(8)
    new DataView(bytes.buffer).setBigUint64(0, seq)
    t.equal(encodeId(seq), base32Encode(bytes, 'Crockford'), `seq ${seq}`)
  }
  t.throws(() => encodeId(-1), RangeError, 'no negative seq')
  t.throws(() => encodeId(1n << 64n), RangeError, 'nothing past u64')
})

t.test('decoding is strict', async (t) => {
  t.equal(decodeId('ZZZZZZZZZZZZZ'), undefined, 'a set padding bit')
  t.equal(decodeId('000000000002'), undefined, '12 characters')
  t.equal(decodeId('00000000000002'), undefined, '14 characters')
  t.equal(decodeId('000000000000I'), undefined, 'a letter outside the alphabet')
  t.equal(decodeId('000000000000u'), undefined, 'lower case')
})

t.test('cursors: 13 characters are an id, anything else decimal', async (t) => {
  t.equal(parseCursor('0000000000020'), 32n)
  t.equal(parseCursor('32'), 32n)
  t.equal(parseCursor('0'), 0n)
  t.equal(parseCursor('18446744073709551615'), (1n << 64n) - 1n)
  t.equal(parseCursor('18446744073709551616'), undefined, 'past u64')
  for (const bad of ['', '-1', '+1', '01', '1e3', ' 1', 'abc']) t.equal(parseDecimal(bad), undefined, JSON.stringify(bad))
})
