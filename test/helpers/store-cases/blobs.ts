import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { BlobStore } from '../../../src/kv/store.js'
import type { Case } from './common.js'
import { ALICE, deleteFile, writeFile } from './common.js'

async function readAll(stream: Readable | undefined): Promise<Buffer | undefined> {
  if (stream === undefined) return undefined
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(part as Buffer)
  return Buffer.concat(parts)
}

/** Deterministic bytes that differ chunk to chunk, so a misplaced chunk shows. */
function pattern(size: number, seed: number): Buffer {
  const buf = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4) buf.writeUInt32LE(Math.imul(i + seed, 2654435761) >>> 0, Math.min(i, size - 4))
  return buf
}

async function storeBlob(blobs: BlobStore, bytes: Buffer, piece = 100_000): Promise<string> {
  const upload = await blobs.create()
  for (let at = 0; at < bytes.length; at += piece) await upload.write(bytes.subarray(at, at + piece))
  await upload.write(new Uint8Array(0))
  await upload.finish()
  return upload.id
}

const MiB = 1024 * 1024

/**
 * Memory still referenced: heap and buffers after a full collection, so garbage that the
 * collector has not reached yet (which RSS counts) does not pass for memory held.
 */
function liveMemory(): () => number {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  return () => {
    // twice: array buffers freed by one collection are swept in the background, and counted until the next
    gc()
    gc()
    const m = process.memoryUsage()
    return m.heapUsed + m.arrayBuffers
  }
}

/** File bodies too large to live inline. */
export const blobCases: Record<string, Case> = {
  async 'a blob is written in pieces and read back whole, from any instance'(t, factory) {
    const { store, second } = await factory.open(t)
    const bytes = pattern(600_000, 1)
    const id = await storeBlob(store.blobs, bytes, 70_001)
    t.same(await readAll(await store.blobs.openRead(id)), bytes)
    if (second !== undefined) t.same(await readAll(await (await second()).blobs.openRead(id)), bytes, 'another instance serves it')
    const empty = await storeBlob(store.blobs, Buffer.alloc(0))
    t.same(await readAll(await store.blobs.openRead(empty)), Buffer.alloc(0), 'an empty blob')
    t.equal(await store.blobs.openRead('0'.repeat(32)), undefined, 'an unknown id')
    const aborted = await store.blobs.create()
    await aborted.write(bytes)
    await aborted.abort()
    t.equal(await store.blobs.openRead(aborted.id), undefined, 'an aborted upload is gone')
    await store.blobs.remove(id)
    t.equal(await store.blobs.openRead(id), undefined, 'a removed blob cannot be opened')
  },

  async 'a stream opened before its blob is removed yields every byte'(t, factory) {
    const { store } = await factory.open(t)
    const bytes = pattern(5 * MiB + 123, 2)
    const id = await storeBlob(store.blobs, bytes, 256 * 1024)
    const stream = (await store.blobs.openRead(id))!
    const parts: Buffer[] = []
    const it = stream[Symbol.asyncIterator]()
    parts.push((await it.next()).value as Buffer)
    await store.blobs.remove(id)
    for (let r = await it.next(); !r.done; r = await it.next()) parts.push(r.value as Buffer)
    t.ok(Buffer.concat(parts).equals(bytes), 'whole and in order')
  },

  async 'committing a blob file references its blob; replacing or deleting it releases it'(t, factory) {
    const { store } = await factory.open(t)
    await store.createUser(ALICE, 1)
    const first = await storeBlob(store.blobs, pattern(300_000, 3))
    await writeFile(store, ALICE, '/pub/big', 300_000, { blob: first })
    t.equal((await store.fileMeta(ALICE, '/pub/big'))!.blob, first)
    t.equal(await store.inlineContent(ALICE, '/pub/big'), undefined, 'no inline content for a blob file')
    await store.blobs.remove(first) // a stray release of a referenced blob must not take it
    t.ok(await readAll(await store.blobs.openRead(first)), 'still served while referenced')
    const next = await storeBlob(store.blobs, pattern(300_001, 4))
    await writeFile(store, ALICE, '/pub/big', 300_001, { blob: next })
    t.equal(await store.blobs.openRead(first), undefined, 'the replaced version is released')
    t.same(await readAll(await store.blobs.openRead(next)), pattern(300_001, 4))
    await writeFile(store, ALICE, '/pub/big', 5) // replaced by an inline file
    t.equal(await store.blobs.openRead(next), undefined, 'released when replaced by inline content')
    const last = await storeBlob(store.blobs, pattern(1000, 5))
    await writeFile(store, ALICE, '/pub/big', 1000, { blob: last })
    t.equal((await store.fileMeta(ALICE, '/pub/big'))!.blob, last, 'inline replaced by a blob')
    await deleteFile(store, ALICE, '/pub/big')
    t.equal(await store.blobs.openRead(last), undefined, 'released when the file is deleted')
  },

  async 'a 100 MiB blob streams in and out in bounded memory'(t, factory) {
    const { store } = await factory.open(t)
    const total = 100 * MiB
    const piece = Buffer.alloc(64 * 1024)
    const inHash = createHash('sha256')
    const live = liveMemory()
    const base = live()
    let peak = base
    const upload = await store.blobs.create()
    for (let at = 0, n = 0; at < total; at += piece.length, n++) {
      piece.fill(n & 0xff)
      piece.writeUInt32LE(n, 0)
      inHash.update(piece)
      await upload.write(piece)
      if (n % 160 === 0) peak = Math.max(peak, live())
    }
    await upload.finish()
    const outHash = createHash('sha256')
    let size = 0
    let n = 0
    for await (const part of (await store.blobs.openRead(upload.id))!) {
      outHash.update(part as Buffer)
      size += (part as Buffer).length
      if (n++ % 40 === 0) peak = Math.max(peak, live())
    }
    t.equal(size, total)
    t.equal(outHash.digest('hex'), inHash.digest('hex'), 'the same bytes came back')
    // a copy of the body held anywhere, on either side, would alone add 100 MiB
    const grew = (peak - base) / MiB
    t.ok(grew < 16, `live memory grew by at most ${grew.toFixed(1)} MiB while 100 MiB streamed each way`)
  },
}
