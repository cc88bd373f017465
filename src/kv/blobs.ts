import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises'
import { createReadStream, type ReadStream } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'

/**
 * Content too large to live inline in the database is kept as one file per file version
 * under `<data>/blobs/<id>`. A blob is written and fsynced (file and directory) before the
 * batch that references it commits, so a committed reference always points at whole bytes.
 * A blob nobody references (an upload cut short, a crash between commit and unlink) is
 * swept at start-up.
 */
export class BlobStore {
  readonly #dir: string

  constructor(dir: string) {
    this.#dir = dir
  }

  async open(): Promise<void> {
    await mkdir(this.#dir, { recursive: true })
  }

  newId(): string {
    return randomBytes(16).toString('hex')
  }

  async create(id: string): Promise<FileHandle> {
    return open(join(this.#dir, id), 'wx')
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

  read(id: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(join(this.#dir, id), range)
  }

  /**
   * A stream over a blob whose file is already open, or undefined when it is gone (replaced
   * and unlinked since its id was read). Once open, the bytes stay readable even if the
   * blob is unlinked meanwhile, so a reader never fails halfway.
   */
  async openRead(id: string): Promise<ReadStream | undefined> {
    try {
      const fh = await open(join(this.#dir, id), 'r')
      return fh.createReadStream()
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async remove(id: string): Promise<void> {
    await unlink(join(this.#dir, id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err
    })
  }

  /** Removes every blob file for which `isReferenced` says no. Anything but files is left alone. */
  async sweep(isReferenced: (id: string) => Promise<boolean>): Promise<number> {
    let removed = 0
    for (const entry of await readdir(this.#dir, { withFileTypes: true })) {
      // unlink() on a folder throws, and a stray folder must not stop start-up
      if (!entry.isFile()) continue
      if (!(await isReferenced(entry.name))) {
        await this.remove(entry.name)
        removed++
      }
    }
    return removed
  }
}
