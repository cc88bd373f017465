import type { Readable } from 'node:stream'
import { fileKey, keyOrder, type FileMeta, type Store } from './store.js'

export type { FileMeta }

export interface ListOptions {
  limit: number
  /** exclusive: a path under the listed directory */
  cursor?: string
  reverse: boolean
  shallow: boolean
}

/** The read side of stored files: metadata, content and directory listings. */
export class FileStore {
  readonly #store: Store

  constructor(store: Store) {
    this.#store = store
  }

  meta(user: string, path: string): Promise<FileMeta | undefined> {
    return this.#store.fileMeta(user, path)
  }

  /**
   * The bytes of the version `meta` describes: a buffer when inline, a stream from its blob
   * otherwise. Undefined when that version was replaced or deleted after `meta` was read;
   * the caller reads the metadata again.
   */
  async content(user: string, path: string, meta: FileMeta): Promise<Uint8Array | Readable | undefined> {
    if (meta.blob !== undefined) return this.#store.blobs.openRead(meta.blob)
    const v = await this.#store.inlineContent(user, path)
    // meta and content are two reads: a write between them would pair one version's
    // headers with another's bytes, so the version is checked again after reading.
    const now = await this.meta(user, path)
    if (now === undefined || now.hash !== meta.hash || now.mtime !== meta.mtime || now.blob !== undefined) return undefined
    return v
  }

  /**
   * Paths below `dir` (which ends in `/`), in byte order. Shallow listings name each
   * direct child once; sub-directories end in `/`.
   */
  async list(user: string, dir: string, opts: ListOptions): Promise<string[]> {
    const base = fileKey(user, dir)
    const end = base.slice(0, -1) + '0' // '0' follows '/' in byte order: the end of base's keys
    const cursor = opts.cursor !== undefined ? fileKey(user, opts.cursor) : undefined
    const out: string[] = []
    if (!opts.shallow) {
      const range = opts.reverse
        ? { gt: base, lt: cursor !== undefined && before(cursor, end) ? cursor : end, reverse: true, limit: opts.limit }
        : { gt: cursor !== undefined && before(base, cursor) ? cursor : base, lt: end, limit: opts.limit }
      for await (const key of this.#store.fileKeys(range)) out.push(key.slice(user.length))
      return out
    }
    // Shallow: read one key, collapse it to its direct child, then seek past that child.
    let gt: string | undefined = cursor !== undefined && before(base, cursor) ? cursor : base
    let gte: string | undefined
    let lt = cursor !== undefined && before(cursor, end) ? cursor : end
    while (out.length < opts.limit) {
      const range = opts.reverse ? { gt: base, lt, reverse: true, limit: 1 } : { gt, gte, lt: end, limit: 1 }
      let key: string | undefined
      for await (const k of this.#store.fileKeys(range)) key = k
      if (key === undefined) break
      const rest = key.slice(base.length)
      const slash = rest.indexOf('/')
      const childKey = slash === -1 ? key : base + rest.slice(0, slash + 1)
      const fresh = cursor === undefined || (opts.reverse ? before(childKey, cursor) : before(cursor, childKey))
      if (fresh) out.push(childKey.slice(user.length))
      if (opts.reverse) lt = childKey // keys under a child directory sort after it, so this skips them
      else if (slash === -1) [gt, gte] = [key, undefined] // a gte left from a directory would win and repeat this key
      else [gt, gte] = [undefined, childKey.slice(0, -1) + '0'] // the first key past childKey's subtree
    }
    return out
  }
}

/** Whether key `a` sorts before `b`, in the engines' order. */
function before(a: string, b: string): boolean {
  return keyOrder(a, b) < 0
}
