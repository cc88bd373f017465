import { Level } from 'level'
import type { CursorStore, LogEvent, SnapshotFile, SnapshotSynced } from 'hearth-homeserver-client'

export interface FileRow {
  size: number
  contentHash: string
  /** the seq of the write that made the file what it is, decimal */
  seq: string
}

export interface UserRow {
  files: number
  bytes: number
  /** events applied for this user after the snapshot: PUTs and DELs, counted once each */
  events: number
}

/** How far the view has got; kept under one key, written with every change. */
export interface Progress {
  /**
   * the follower's cursor: during the snapshot the resume token of the last frame applied;
   * after it the last event applied, or a later position the stream scanned past
   */
  cursor?: string
  /** the seq the snapshot was complete at, decimal, once it is */
  snapshot?: string
  /** seq of the last event applied (or of the snapshot), decimal */
  lastSeq: string
  /** events applied after the snapshot, each counted once */
  applied: number
}

const EMPTY: Progress = { lastSeq: '0', applied: 0 }

/**
 * A materialised view of every public file: its size per `<user><path>`, and files and bytes
 * per user. Three sublevels of one LevelDB:
 *
 *   files/<user><path>  → { size, contentHash, seq }
 *   users/<user>        → { files, bytes, events }
 *   meta/progress       → { cursor, snapshot, lastSeq, applied }
 *
 * It is built from a snapshot (`clear`, `applyFile` per frame, `synced`), then kept up to date
 * by the events after it (`apply`). Invariant: the progress row and the rows it describes
 * change in one atomic batch, so after a crash at any instant the view is exactly "the
 * snapshot's frames up to the cursor", or "the snapshot and every event up to lastSeq,
 * applied once".
 */
export class View {
  readonly db: Level<string, string>
  readonly #files
  readonly #users
  readonly #meta
  #progress: Progress = EMPTY
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
   * match; it only ever moves the cursor forward. A snapshot's resume tokens are each written
   * by the batch of their frame, so saving one again changes nothing.
   */
  readonly cursorStore: CursorStore = {
    load: async () => this.#progress.cursor,
    save: (id) => this.#run(async () => {
      if (id.startsWith('~')) return
      // Ids are fixed-width and sort as their seqs do, so string order is log order; a
      // token sorts after every id, and is followed only by the id `synced` wrote.
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
      const batch = this.db.batch()
      // A DEL of a file the view does not hold has nothing to undo; it still counts as an event.
      await this.#stage(batch, ev, await this.#files.get(ev.user + ev.path), true)
      await this.#commit(batch, { ...this.#progress, cursor: ev.id, lastSeq: ev.seq, applied: this.#progress.applied + 1 })
      return true
    })
  }

  /**
   * Applies one frame of a snapshot and moves the cursor to its token, in one batch. The
   * frame wins over the row only when it is newer (its seq is higher): a write made while the
   * snapshot was read may be older than the file it already gave. A DEL leaves no row behind:
   * the frames of one path come in rising seq after its file, so nothing older follows it.
   * Resolves true when the frame changed the view.
   */
  applyFile(file: SnapshotFile): Promise<boolean> {
    return this.#run(async () => {
      const old = await this.#files.get(file.user + file.path)
      const newer = old === undefined ? file.type === 'PUT' : BigInt(file.seq) > BigInt(old.seq)
      const batch = this.db.batch()
      if (newer) await this.#stage(batch, file, old, false)
      await this.#commit(batch, { ...this.#progress, cursor: file.cursor })
      return newer
    })
  }

  /** The snapshot is complete: the events after `seq` follow, and `apply` takes them from here. */
  synced(s: SnapshotSynced): Promise<void> {
    return this.#run(() => this.#commit(this.db.batch(), { ...this.#progress, cursor: s.id, snapshot: s.seq, lastSeq: s.seq }))
  }

  /**
   * A snapshot begins from its first file: every row goes. The progress row goes last, so a
   * crash in the middle leaves the old cursor, which meets the same reset, or the same restart
   * of the snapshot, again (the homeserver's floor only rises) and clears again.
   */
  clear(): Promise<void> {
    return this.#run(async () => {
      await this.#files.clear()
      await this.#users.clear()
      await this.#commit(this.db.batch(), EMPTY)
    })
  }

  /** A file's change in `batch`, and its owner's totals; `event`: it counts as an event applied. */
  async #stage(batch: ReturnType<Level<string, string>['batch']>, ev: LogEvent, old: FileRow | undefined, event: boolean): Promise<void> {
    const user = (await this.#users.get(ev.user)) ?? { files: 0, bytes: 0, events: 0 }
    if (event) user.events += 1
    if (ev.type === 'PUT') {
      user.files += old === undefined ? 1 : 0
      user.bytes += (ev.size ?? 0) - (old?.size ?? 0)
      batch.put(ev.user + ev.path, { size: ev.size ?? 0, contentHash: ev.contentHash ?? '', seq: ev.seq }, { sublevel: this.#files })
    } else if (old !== undefined) {
      user.files -= 1
      user.bytes -= old.size
      batch.del(ev.user + ev.path, { sublevel: this.#files })
    }
    batch.put(ev.user, user, { sublevel: this.#users })
  }

  async #commit(batch: ReturnType<Level<string, string>['batch']>, next: Progress): Promise<void> {
    batch.put('progress', next, { sublevel: this.#meta })
    await batch.write()
    this.#progress = next
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
