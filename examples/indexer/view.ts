import { Level } from 'level'
import type { CursorStore, LogEvent } from '../../src/client/index.js'

export interface FileRow {
  size: number
  contentHash: string
}

export interface UserRow {
  files: number
  bytes: number
  /** events applied for this user: PUTs and DELs, counted once each */
  events: number
}

/** How far the view has got; kept under one key, written with every change. */
export interface Progress {
  /** the follower's cursor: the last event applied, or a later position the stream scanned past */
  cursor?: string
  /** seq of the last event applied, decimal */
  lastSeq: string
  /** events applied since the view was created, each counted once */
  applied: number
}

/**
 * A materialised view of every public file: its size per `<user><path>`, and files and bytes
 * per user. Three sublevels of one LevelDB:
 *
 *   files/<user><path>  → { size, contentHash }
 *   users/<user>        → { files, bytes, events }
 *   meta/progress       → { cursor, lastSeq, applied }
 *
 * Invariant: the progress row and the rows it describes change in one atomic batch, so
 * after a crash at any instant the view is exactly "every event up to lastSeq, applied once".
 */
export class View {
  readonly db: Level<string, string>
  readonly #files
  readonly #users
  readonly #meta
  #progress: Progress = { lastSeq: '0', applied: 0 }
  /** every write goes through this chain, so a cursor save never lands between a read and its batch */
  #serial: Promise<unknown> = Promise.resolve()

  private constructor(path: string) {
    this.db = new Level<string, string>(path)
    this.#files = this.db.sublevel<string, FileRow>('files', { valueEncoding: 'json' })
    this.#users = this.db.sublevel<string, UserRow>('users', { valueEncoding: 'json' })
    this.#meta = this.db.sublevel<string, Progress>('meta', { valueEncoding: 'json' })
  }

  static async open(path: string): Promise<View> {
    const view = new View(path)
    await view.db.open()
    view.#progress = (await view.#meta.get('progress')) ?? view.#progress
    return view
  }

  get progress(): Readonly<Progress> {
    return this.#progress
  }

  /**
   * The follower's cursor store, over this same database. `load` is what makes a restart
   * resume right after the last batch that reached the disk. `save` is called after the
   * batch that already holds the same cursor, or for a position scanned past without a
   * match; it only ever moves the cursor forward.
   */
  readonly cursorStore: CursorStore = {
    load: async () => this.#progress.cursor,
    save: (id) => this.#run(async () => {
      // Ids are fixed-width and sort as their seqs do, so string order is log order.
      if (this.#progress.cursor !== undefined && id <= this.#progress.cursor) return
      const next = { ...this.#progress, cursor: id }
      await this.#meta.put('progress', next)
      this.#progress = next
    }),
  }

  /**
   * Applies one event and moves the cursor, in one batch. Idempotent: an event at or below
   * `lastSeq` is already in the view and is skipped, so a redelivery changes nothing.
   * Resolves true when the event changed the view, false when it was already in it.
   */
  apply(ev: LogEvent): Promise<boolean> {
    return this.#run(async () => {
      if (BigInt(ev.seq) <= BigInt(this.#progress.lastSeq)) return false
      const key = ev.user + ev.path
      const old = await this.#files.get(key)
      const user = (await this.#users.get(ev.user)) ?? { files: 0, bytes: 0, events: 0 }
      user.events += 1
      const batch = this.db.batch()
      if (ev.type === 'PUT') {
        user.files += old === undefined ? 1 : 0
        user.bytes += (ev.size ?? 0) - (old?.size ?? 0)
        batch.put(key, { size: ev.size ?? 0, contentHash: ev.contentHash ?? '' }, { sublevel: this.#files })
      } else if (old !== undefined) {
        // A DEL of a file the view never saw (it predates a reset) has nothing to undo.
        user.files -= 1
        user.bytes -= old.size
        batch.del(key, { sublevel: this.#files })
      }
      batch.put(ev.user, user, { sublevel: this.#users })
      const next = { cursor: ev.id, lastSeq: ev.seq, applied: this.#progress.applied + 1 }
      batch.put('progress', next, { sublevel: this.#meta })
      await batch.write()
      this.#progress = next
      return true
    })
  }

  async users(): Promise<Map<string, UserRow>> {
    return new Map(await this.#users.iterator().all())
  }

  async files(): Promise<Map<string, FileRow>> {
    return new Map(await this.#files.iterator().all())
  }

  async close(): Promise<void> {
    await this.#serial.catch(() => {})
    await this.db.close()
  }

  #run<T>(work: () => Promise<T>): Promise<T> {
    const step = this.#serial.catch(() => {}).then(work)
    this.#serial = step
    return step
  }
}
