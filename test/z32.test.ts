import t from 'tap'
import fc from 'fast-check'
import z32 from 'z32'
import { z32Decode, z32Encode } from 'hearth-homeserver-client/z32'
import { decodePublicKey, encodePublicKey } from 'hearth-homeserver-client/keys'

// The client package's own z-base-32 codec, byte for byte against the `z32` package.

t.test('z32Encode and z32Decode agree with the z32 package', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
    const text = z32.encode(bytes)
    return z32Encode(bytes) === text && Buffer.from(z32Decode(text)!).equals(Buffer.from(z32.decode(text)))
  }), { numRuns: 2000 })
  t.equal(z32Decode('yb0'), undefined, 'a character outside the alphabet')
})

t.test('a public key name is canonical: 52 characters whose padding bits are zero', async (t) => {
  const key = new Uint8Array(32).fill(0xab)
  const name = encodePublicKey(key)
  t.equal(name, z32.encode(key))
  t.same(decodePublicKey(name), key)
  // the last character carries 1 bit of the key and 4 padding bits: any other with the same key bit is not canonical
  const last = name.at(-1)!
  const other = [...'ybndrfg8ejkmcpqxot1uwisza345h769'].find((c) => c !== last && z32.decode(name.slice(0, -1) + c)[31] === key[31])
  t.equal(decodePublicKey(name.slice(0, -1) + other), undefined, 'non-zero padding bits are refused')
  t.equal(decodePublicKey(name.slice(1)), undefined, 'too short')
})
