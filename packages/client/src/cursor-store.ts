import { readFile } from 'node:fs/promises'
import { writeFileAtomic } from './atomic-file.js'

/**
 * Where a follower keeps its position. `follow()` calls `save` one call at a time, with ids
 * that never go backwards, and may skip ids in between (it saves the newest position once
 * the previous save finished). During a snapshot it saves resume tokens instead: opaque
 * printable text starting with `~`, each one after the frames before it, and then the id of
 * `synced`; tokens do not sort in stream order. What `load` returns wins over the `from` option.
 */
export interface CursorStore {
  load(): Promise<string | undefined>
  save(id: string): Promise<void>
}

/** Keeps the cursor for the life of the process only. */
export class MemoryCursorStore implements CursorStore {
  #id: string | undefined

  constructor(id?: string) {
    this.#id = id
  }

  get id(): string | undefined {
    return this.#id
  }

  async load(): Promise<string | undefined> {
    return this.#id
  }

  async save(id: string): Promise<void> {
    this.#id = id
  }
}

/**
 * Node: keeps the cursor in one small file, written whole (writeFileAtomic): after a crash the
 * file holds either the old cursor or the new one, never a torn mix. The file system is loaded
 * when first used, so this module also loads in a browser, which never calls it.
 */
export class FileCursorStore implements CursorStore {
  readonly path: string

  constructor(path: string) {
    this.path = path
  }

  async load(): Promise<string | undefined> {
    const { readFile } = await import('node:fs/promises')
    try {
      const text = (await readFile(this.path, 'utf8')).trim()
      return text === '' ? undefined : text
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return undefined
      throw err
    }
  }

  async save(id: string): Promise<void> {
    const { writeFileAtomic } = await import('./atomic-file.js')
    await writeFileAtomic(this.path, id + '\n')
  }
}

/**
 * A browser: keeps the cursor in Web Storage (`localStorage` by default, so it outlives the
 * page) under one key. A write of one item is whole, as a file's rename is.
 */
export class WebStorageCursorStore implements CursorStore {
  readonly key: string
  readonly #storage: Storage

  constructor(key: string, storage: Storage = globalThis.localStorage) {
    if (storage === undefined) throw new TypeError('no Web Storage here: pass a CursorStore, or a file path in Node')
    this.key = key
    this.#storage = storage
  }

  async load(): Promise<string | undefined> {
    return this.#storage.getItem(this.key) ?? undefined
  }

  async save(id: string): Promise<void> {
    this.#storage.setItem(this.key, id)
  }
}

/** Node, Deno and Bun have a file system for a cursor file; a page has Web Storage. */
function inNode(): boolean {
  return typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string'
}

/**
 * Where a follower keeps its position when told only a name: a file of that name in Node, a
 * Web Storage key of that name in a browser.
 */
export function namedCursorStore(name: string): CursorStore {
  return inNode() ? new FileCursorStore(name) : new WebStorageCursorStore(name)
}
