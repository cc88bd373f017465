import { blake3 } from '@noble/hashes/blake3.js'
import t from 'tap'
import { contentHasher, largeContentHasher, nativeBlake3, type ContentHasher } from '../src/shared/content-hash.js'
import { seededRandom } from './helpers/random.js'

// Small bodies are hashed by WebAssembly, large ones by native code: both must give the bytes
// of blake3 as an independent implementation computes them, however the body is cut up.

const SEED = 20261130

t.test('large bodies are hashed natively where the package has a binding', async (t) => {
  // linux-x64 is where the suite runs (and the Docker image): a missing binding would fall back
  // to WebAssembly silently, and the case below would then compare WebAssembly with itself
  if (process.platform === 'linux' && process.arch === 'x64') t.ok(nativeBlake3, 'the native binding loaded')
  else t.comment(`native blake3 on ${process.platform}-${process.arch}: ${nativeBlake3}`)
})

t.test('both content hashers agree with blake3 at every size and cut', async (t) => {
  const random = seededRandom(SEED)
  t.comment(`seed ${SEED}`)
  for (const size of [0, 1, 31, 1023, 1024, 1025, 65_536, 65_537, 1_048_583, 3 * 1_048_576 + 5]) {
    const body = Buffer.alloc(size)
    for (let i = 0; i < size; i++) body[i] = Math.floor(random() * 256)
    const expected = Buffer.from(blake3(body)).toString('base64')
    for (const [name, make] of [['WebAssembly', contentHasher], ['native', largeContentHasher]] as [string, () => Promise<ContentHasher>][]) {
      const hasher = await make()
      // cut into pieces of random length, some empty, some not Buffers
      for (let at = 0; at < size; ) {
        const take = Math.min(size - at, Math.floor(random() * 70_000))
        const piece = body.subarray(at, at + take)
        // request bodies come as Buffers; a plain Uint8Array must hash the same
        hasher.update(random() < 0.5 ? piece : new Uint8Array(piece))
        at += take
      }
      t.equal(hasher.digest(), expected, `${name}, ${size} bytes`)
    }
  }
})

t.test('a WebAssembly hasher given back is clean for the next body', async (t) => {
  const first = await contentHasher()
  first.update(Buffer.from('left over'))
  first.digest()
  const next = await contentHasher()
  next.update(Buffer.from('abc'))
  t.equal(next.digest(), Buffer.from(blake3(Buffer.from('abc'))).toString('base64'))
})
