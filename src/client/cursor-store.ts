import { readFile } from 'node:fs/promises'
import { writeFileAtomic } from '../shared/atomic-file.js'

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
 * Keeps the cursor in one small file, written whole (writeFileAtomic): after a crash the file
 * holds either the old cursor or the new one, never a torn mix.
 */
export class FileCursorStore implements CursorStore {
  readonly path: string

  constructor(path: string) {
    this.path = path
  }

  async load(): Promise<string | undefined> {
    try {
      const text = (await readFile(this.path, 'utf8')).trim()
      return text === '' ? undefined : text
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async save(id: string): Promise<void> {
    await writeFileAtomic(this.path, id + '\n')
  }
}
