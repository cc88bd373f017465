import type { Readable } from 'node:stream'
import { fileTypeFromBuffer } from 'file-type'
import mime from 'mime-types'
import { HearthError, fail } from '../errors.js'
import { contentHasher, largeContentHasher, type ContentHasher } from '../shared/content-hash.js'
import type { BlobStore, BlobUpload } from './store.js'

/** Bytes kept for content sniffing: what file-type reads at most. */
const SNIFF_BYTES = 4100

export interface ReceivedBody {
  size: number
  hash: string
  type: string
  inline?: Uint8Array
  blob?: string
}

/**
 * Bytes gathered before a blob write: a large body arrives in socket reads of 64 KiB or less,
 * and a write per read cost a trip to libuv's threads each.
 */
const WRITE_BYTES = 1024 * 1024

/**
 * Reads a request body once, keeping it in memory only while it is small enough to live
 * inline (hashed whole once read), and otherwise spilling it to a blob that is fsynced before
 * this resolves (hashed as it streams). Past `maxBody` bytes the upload is cut off with 413
 * and whatever was written is removed. A blob is written WRITE_BYTES at a time, one write in
 * flight while the next bytes are read and hashed, so hashing and writing overlap. Memory
 * held: at most `inlineMax`, or about three WRITE_BYTES for a moment (the write in flight,
 * the bytes gathered since, and their copy into one buffer).
 */
export async function receiveBody(
  body: Readable,
  path: string,
  blobs: BlobStore,
  limits: { maxBody: number; inlineMax: number; idleMs?: number; onIdle?: () => void; streamSlot?: () => () => void },
): Promise<ReceivedBody> {
  // A body that stops sending is cut off, so a stalled upload holds nothing for long. `onIdle`
  // answers the client (a 408 that closes the connection, which ends the body); without it the
  // body is ended here.
  const idle = limits.idleMs === undefined ? undefined : setTimeout(() => {
    if (limits.onIdle !== undefined) limits.onIdle()
    else body.destroy(new HearthError('RequestTimeout', `No body bytes for ${limits.idleMs} ms`))
  }, limits.idleMs)
  let release: (() => void) | undefined
  try {
    // a body that outgrows inline holds megabytes while it streams: that takes a slot
    return await read(body, path, blobs, limits, idle, () => (release = limits.streamSlot?.()))
  } finally {
    clearTimeout(idle)
    release?.()
  }
}

async function read(
  body: Readable,
  path: string,
  blobs: BlobStore,
  limits: { maxBody: number; inlineMax: number },
  idle: NodeJS.Timeout | undefined,
  streaming: () => void,
): Promise<ReceivedBody> {
  // a body kept inline is hashed whole at the end, a larger one as it streams (content-hash.ts)
  let hasher: ContentHasher | undefined
  const held: Uint8Array[] = []
  let size = 0
  let upload: BlobUpload | undefined
  let finished = false
  let sniff: Uint8Array | undefined
  let gathered: Uint8Array[] = []
  let gatheredBytes = 0
  let writing: Promise<void> | undefined
  /** Hands what was gathered to the blob once the write before it is done: writes stay in order. */
  const write = async (to: BlobUpload) => {
    const bytes = concat(gathered, gatheredBytes)
    gathered = []
    gatheredBytes = 0
    await writing
    writing = to.write(bytes)
    // awaited by the next write or at the end; until then its failure must not go unhandled
    writing.catch(() => {})
  }
  try {
    for await (const raw of body) {
      idle?.refresh()
      const chunk = raw as Uint8Array
      size += chunk.length
      if (size > limits.maxBody) fail('PayloadTooLarge', `Body is larger than ${limits.maxBody} bytes`)
      if (upload === undefined && size <= limits.inlineMax) {
        held.push(chunk)
        continue
      }
      if (upload === undefined) {
        streaming()
        upload = await blobs.create()
        sniff = Buffer.concat(held).subarray(0, SNIFF_BYTES)
        hasher = await largeContentHasher()
        for (const c of held.splice(0)) {
          hasher.update(c)
          gather(c)
        }
      }
      hasher!.update(chunk)
      if (sniff!.length < SNIFF_BYTES) sniff = Buffer.concat([sniff!, chunk]).subarray(0, SNIFF_BYTES)
      gather(chunk)
      if (gatheredBytes >= WRITE_BYTES) await write(upload)
    }
    if (upload !== undefined) {
      if (gatheredBytes > 0) await write(upload)
      await writing
      await upload.finish()
      finished = true
    }
  } catch (err) {
    // a write still in flight must end before its file is closed and removed
    await writing?.catch(() => {})
    if (upload !== undefined) await (finished ? blobs.remove(upload.id) : upload.abort()).catch(() => {})
    body.destroy()
    throw err
  }
  const blob = upload?.id
  const inline = blob === undefined ? concat(held, size) : undefined
  const head = inline ?? sniff ?? new Uint8Array()
  if (hasher === undefined) {
    hasher = await contentHasher()
    hasher.update(inline!)
  }
  const hash = hasher.digest()
  return { size, hash, type: await contentType(head.subarray(0, SNIFF_BYTES), path), inline, blob }

  function gather(chunk: Uint8Array): void {
    gathered.push(chunk)
    gatheredBytes += chunk.length
  }
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
}

/** Sniffed from the bytes, then guessed from the extension, then octet-stream. */
export async function contentType(head: Uint8Array, path: string): Promise<string> {
  const sniffed = head.length > 0 ? await fileTypeFromBuffer(head) : undefined
  if (sniffed) return sniffed.mime
  return mime.lookup(path) || 'application/octet-stream'
}
