import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { BlobStore, BlobUpload } from '../store.js'

/** How much of a blob one read takes off the disk. */
const READ_BYTES = 256 * 1024

/**
 * Blobs of the LevelDB engine: one file per file version under `<data>/blobs/<id>`. A blob is
 * written and fsynced (file and folder) before the batch that references it commits, so a
 * committed reference always points at whole bytes. A blob nobody references (an upload cut
 * short, a crash between commit and unlink) is swept at start-up, when no upload can be in
 * progress: this engine serves one process.
 */
export class FileBlobs implements BlobStore {
  readonly #dir: string
  readonly #isReferenced: (id: string) => Promise<boolean>

  /** `isReferenced` says whether a committed file points at a blob: such a blob is never removed. */
  constructor(dir: string, isReferenced: (id: string) => Promise<boolean>) {
    this.#dir = dir
    this.#isReferenced = isReferenced
  }

  async open(): Promise<void> {
    await mkdir(this.#dir, { recursive: true })
  }

  async create(): Promise<BlobUpload> {
    const id = randomBytes(16).toString('hex')
    const fh = await open(join(this.#dir, id), 'wx')
    return new FileUpload(id, fh, this)
  }

  /** Makes the directory entries of newly created blobs durable. */
  async syncDir(): Promise<void> {
    const dir = await open(this.#dir, 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
  }

  /**
   * Once open, the bytes stay readable even if the blob is unlinked meanwhile, so a reader
   * never fails halfway.
   */
  async openRead(id: string): Promise<Readable | undefined> {
    try {
      const fh = await open(join(this.#dir, id), 'r')
      // reads of 256 KiB: a quarter of the syscalls and socket writes of the 64 KiB default,
      // still one bounded buffer per reader
      return fh.createReadStream({ highWaterMark: READ_BYTES })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async remove(id: string): Promise<void> {
    if (!(await this.#isReferenced(id))) await this.unlink(id)
  }

  /** Deletes a blob's file, referenced or not: for blobs a commit has just released. */
  async unlink(id: string): Promise<void> {
    await unlink(join(this.#dir, id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
  }

  /** Removes every blob file no committed file references. Anything but files is left alone. */
  async sweep(): Promise<number> {
    let removed = 0
    for (const entry of await readdir(this.#dir, { withFileTypes: true })) {
      // unlink() on a folder throws, and a stray folder must not stop start-up
      if (!entry.isFile()) continue
      if (!(await this.#isReferenced(entry.name))) {
        await this.unlink(entry.name)
        removed++
      }
    }
    return removed
  }
}

class FileUpload implements BlobUpload {
  readonly id: string
  readonly #fh: FileHandle
  readonly #blobs: FileBlobs

  constructor(id: string, fh: FileHandle, blobs: FileBlobs) {
    this.id = id
    this.#fh = fh
    this.#blobs = blobs
  }

  /** All of `chunk`: a write may take fewer bytes than it was given, and the rest is written after. */
  async write(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.length; ) {
      const { bytesWritten } = await this.#fh.write(chunk, at, chunk.length - at)
      if (bytesWritten === 0) throw new Error(`blob ${this.id}: the file took no bytes`)
      at += bytesWritten
    }
  }

  async finish(): Promise<void> {
    await this.#fh.sync()
    await this.#fh.close()
    await this.#blobs.syncDir()
  }

  async abort(): Promise<void> {
    await this.#fh.close().catch(() => {})
    await this.#blobs.unlink(this.id)
  }
}
