import { allDone } from '../all-done.js'
import { HearthError, fail } from '../errors.js'
import type { ReceivedBody } from '../kv/body-intake.js'
import { WriteRefused, fileKey, type BlobStore, type CommitTx, type FileMeta, type FileRef, type Store } from '../kv/store.js'
import { reachOf, type Reach } from './folder-search.js'
import { GroupTree } from './group-tree.js'
import type { HearthEvent } from './event.js'
import type { EventLog } from './event-log.js'

export type Mutation =
  | { type: 'PUT'; user: string; path: string; content: ReceivedBody }
  | { type: 'DEL'; user: string; path: string }

interface Pending {
  op: Mutation
  resolve: (ev: HearthEvent) => void
  reject: (err: unknown) => void
}

/** Upper bound on mutations per commit, to bound the time one group holds the others back. */
const MAX_GROUP = 1024
/**
 * Mutations that may wait for a commit at once, and the inline bytes they may hold together
 * (larger bodies wait as blobs on disk): past either, a write is refused with 503 and
 * Retry-After rather than queued, so a stuck or slow store never grows memory without bound.
 */
export const MAX_QUEUED = 8 * MAX_GROUP
export const MAX_QUEUED_BYTES = 64 * 1024 * 1024
/**
 * Upper bound on the work one group's checks do synchronously, in bytes of key handled: each
 * mutation's path and keys, and a share for each folder above it (the clash check lists the
 * folders, and the group's tree walks them). Deep paths commit in smaller groups, so no
 * group's synchronous work keeps the event loop long; shallow ones are not held back.
 */
const MAX_GROUP_KEY_BYTES = 128 * 1024
/** the share of each folder above a path: the check's list of folders and the tree's walk, a few dozen bytes each */
const PER_FOLDER_BYTES = 79

/** The content bytes a queued mutation holds in memory. */
function inlineBytes(op: Mutation): number {
  return op.type === 'PUT' ? (op.content.inline?.length ?? 0) : 0
}

/** The key bytes a mutation's checks handle. */
function checkBytes(op: Mutation): number {
  let depth = 0
  for (let i = 0; i < op.path.length; i++) if (op.path.charCodeAt(i) === 47) depth++
  return op.path.length + op.user.length + depth * PER_FOLDER_BYTES
}

/**
 * What a file costs its owner's quota (§3): its content, its path, and a fixed share for the
 * metadata and event kept with it, so empty files with long paths are not free.
 */
export const FILE_OVERHEAD = 256
export function fileCost(path: string, size: number): number {
  return size + Buffer.byteLength(path) + FILE_OVERHEAD
}

/** Told of each commit group once it is durable and announced: its size and duration. */
export type CommitObserver = (group: { events: number; refused: number; ms: number }) => void

/**
 * The homeserver's write path: every PUT and DELETE reaches storage and the event log here
 * (`hearth relay` appends to its log through RelayIngest, src/relay/ingest.ts, with events
 * from upstreams instead). Each becomes part of one commit group — the file's metadata and
 * content (or blob reference), its event, and the user's usage — committed by the store as
 * one transaction. While one group commits, newcomers queue, and the next group takes them
 * all, so concurrent writers share a commit.
 * A promise resolves only after its group is durable and announced.
 *
 * Each mutation is checked against the state the transaction read (every earlier commit, of
 * any process) plus this group's own effects, so the rules — a file may not sit where a
 * folder is, usage stays within the quota — hold across processes as in one. Seqs follow the
 * head the transaction read: a mutation refused here gets none, and a failed commit uses none.
 */
export class Writer {
  readonly #store: Store
  readonly #events: EventLog
  readonly #quota: number
  readonly #observers = new Set<CommitObserver>()
  readonly #queue: Pending[] = []
  /** inline content bytes of the queued mutations */
  #queuedBytes = 0
  #running: Promise<void> | undefined
  #busySince: number | undefined

  constructor(store: Store, events: EventLog, quota: number) {
    this.#store = store
    this.#events = events
    this.#quota = quota
  }

  onCommit(observer: CommitObserver): () => void {
    this.#observers.add(observer)
    return () => this.#observers.delete(observer)
  }

  /** `performance.now()` when the group now committing started, if one is. */
  get busySince(): number | undefined {
    return this.#busySince
  }

  submit(op: Mutation): Promise<HearthEvent> {
    const bytes = inlineBytes(op)
    if (this.#queue.length >= MAX_QUEUED || this.#queuedBytes + bytes > MAX_QUEUED_BYTES) {
      return Promise.reject(new HearthError('Unavailable', 'Too many writes are waiting for the storage; try again shortly'))
    }
    this.#queuedBytes += bytes
    return new Promise((resolve, reject) => {
      this.#queue.push({ op, resolve, reject })
      this.#running ??= this.#drain()
    })
  }

  /** Resolves once everything submitted so far is committed or refused. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const group = this.#queue.splice(0, this.#nextGroupSize())
        for (const p of group) this.#queuedBytes -= inlineBytes(p.op)
        await this.#commit(group)
      }
    } finally {
      // Cleared in the same tick as the last empty-queue check: a `.finally()` callback would
      // run ticks later, and a submit landing in between would find a drain still "running",
      // start none, and wait forever.
      this.#running = undefined
      this.#busySince = undefined
    }
  }

  /** How many queued mutations the next group takes: at least one, within both bounds. */
  #nextGroupSize(): number {
    let n = 0
    let bytes = 0
    while (n < this.#queue.length && n < MAX_GROUP) {
      bytes += checkBytes(this.#queue[n]!.op)
      if (n > 0 && bytes > MAX_GROUP_KEY_BYTES) break
      n++
    }
    return n
  }

  async #commit(group: Pending[]): Promise<void> {
    const started = performance.now()
    const ts = Date.now()
    this.#busySince = started
    const refused: { p: Pending; err: unknown }[] = []
    let done: { p: Pending; ev: HearthEvent }[]
    try {
      done = await this.#store.commit(async (tx) => {
        refused.length = 0 // an engine may run the work again after a serialisation failure
        const state = new GroupState(tx)
        await state.prefetch(group.map((p) => p.op))
        const out: typeof done = []
        for (const p of group) {
          try {
            out.push({ p, ...this.#prepare(p.op, state, tx, tx.head + out.length + 1, ts) })
          } catch (err) {
            refused.push({ p, err })
          }
        }
        for (const [user, usage] of state.usage) tx.setUsage(user, usage)
        tx.append(out.map((d) => d.ev))
        return out
      })
    } catch (err) {
      // The engine refused something the group holds: each write goes again on its own, so
      // only the one it refuses fails, and nobody else's write is taken down with it.
      if (err instanceof WriteRefused && group.length > 1) {
        for (const p of group) await this.#commit([p])
        return
      }
      // Reads or the commit failed (the database went away, say): the whole group is refused.
      for (const p of group) {
        this.#discard(p.op)
        p.reject(err)
      }
      return
    }
    for (const { p, err } of refused) {
      this.#discard(p.op)
      p.reject(err)
    }
    try {
      if (done.length > 0) await this.#events.publish(done.map((d) => d.ev))
    } catch (err) {
      // only when the log closed first (shutting down): committed, but never acknowledged
      for (const d of done) d.p.reject(err)
      return
    }
    const ms = performance.now() - started
    for (const observe of this.#observers) observe({ events: done.length, refused: refused.length, ms })
    for (const d of done) d.p.resolve(d.ev)
  }

  get #blobs(): BlobStore {
    return this.#store.blobs
  }

  /** A refused PUT leaves its freshly written blob unreferenced: remove it now. (A blob a
   * commit replaces or deletes is released by the engine itself.) */
  #discard(op: Mutation): void {
    if (op.type === 'PUT' && op.content.blob !== undefined) void this.#blobs.remove(op.content.blob).catch(() => {})
  }

  #prepare(op: Mutation, state: GroupState, tx: CommitTx, seq: number, ts: number): { ev: HearthEvent } {
    const old = state.file(op.user, op.path)
    const usage = state.usageOf(op.user)
    if (op.type === 'PUT') {
      // a path that is a file now clashes with nothing: the tree it is part of keeps the rule
      if (old === undefined) this.#checkClash(op.user, op.path, state)
      const c = op.content
      const next = usage - (old ? fileCost(op.path, old.size) : 0) + fileCost(op.path, c.size)
      // a write that shrinks a file is let through even above the quota (it lowers usage)
      if (next > this.#quota && next > usage) fail('InsufficientStorage', 'Storage quota exceeded')
      const meta: FileMeta = { size: c.size, hash: c.hash, type: c.type, mtime: ts, seq, ...(c.blob !== undefined ? { blob: c.blob } : {}) }
      tx.putFile(op.user, op.path, meta, c.inline, old)
      state.put(op.user, op.path, meta, next, old === undefined)
      return { ev: { seq, type: 'PUT', user: op.user, path: op.path, contentHash: meta.hash, size: meta.size, ts } }
    }
    if (old === undefined) fail('NotFound', 'Not found')
    tx.deleteFile(op.user, op.path, old)
    state.delete(op.user, op.path, Math.max(0, usage - fileCost(op.path, old.size)))
    return { ev: { seq, type: 'DEL', user: op.user, path: op.path, ts } }
  }

  /** A file may not sit where a folder is, nor a folder where a file is. */
  #checkClash(user: string, path: string, state: GroupState): void {
    const dir = state.fileAbove(user, path)
    if (dir !== undefined) fail('Conflict', `${dir} is a file`)
    if (state.isFolder(user, path)) fail('Conflict', `${path} is a directory`)
  }
}

/**
 * What one group has read and changed so far: later mutations in the group see it. Every
 * read is made up front (`prefetch`), so the checks run from memory: a group costs a few
 * reads and one commit, not a chain of reads per mutation.
 *
 * The reads for the clash check do not grow with depth: `reachOf` finds how far the stored
 * tree reaches down each path, which leaves one folder above it that can be a stored file.
 * What this group itself changes is kept in a tree of its paths' segments (`GroupTree`).
 */
class GroupState {
  readonly #tx: CommitTx
  readonly #files = new Map<string, FileMeta | null>()
  readonly usage = new Map<string, number>()
  /** for each path a PUT targets: how far the stored tree reaches down it */
  readonly #reach = new Map<string, Reach>()
  /** the files this group created and deleted, by folder */
  readonly #tree = new GroupTree()

  constructor(tx: CommitTx) {
    this.#tx = tx
  }

  async prefetch(ops: readonly Mutation[]): Promise<void> {
    const refs = new Map<string, FileRef>()
    const users = new Set<string>()
    const puts = new Map<string, FileRef>()
    for (const op of ops) {
      refs.set(fileKey(op.user, op.path), op)
      users.add(op.user)
      if (op.type === 'PUT') puts.set(fileKey(op.user, op.path), op)
    }
    const deletes = ops.filter((op) => op.type === 'DEL').length
    const [r, u, p] = [[...refs], [...users], [...puts]]
    const [metas, records, reach] = await allDone([
      this.#tx.files(r.map(([, ref]) => ref)),
      this.#tx.users(u),
      // one more than this group could delete: past that, at least one file stays below
      reachOf(this.#tx, p.map(([, ref]) => ref), deletes + 1),
    ])
    r.forEach(([key], i) => this.#files.set(key, metas[i] ?? null))
    u.forEach((user, i) => {
      const rec = records[i]
      if (rec !== undefined) this.usage.set(user, rec.usage)
    })
    // the one folder above each path that can be a stored file
    const edges = new Map<string, FileRef>()
    p.forEach(([key, { user }], i) => {
      const at = reach[i]!
      this.#reach.set(key, at)
      const dir = at.ancestors[at.filled]
      if (dir !== undefined && !this.#files.has(fileKey(user, dir))) edges.set(fileKey(user, dir), { user, path: dir })
    })
    const e = [...edges]
    const found = await this.#tx.files(e.map(([, ref]) => ref))
    e.forEach(([key], i) => this.#files.set(key, found[i] ?? null))
  }

  file(user: string, path: string): FileMeta | undefined {
    return this.#files.get(fileKey(user, path)) ?? undefined
  }

  usageOf(user: string): number {
    const usage = this.usage.get(user)
    if (usage === undefined) throw new HearthError('Unauthorized', 'Unknown user')
    return usage
  }

  /** A folder above `path` that is a file, counting this group's own changes. */
  fileAbove(user: string, path: string): string | undefined {
    const { ancestors, filled } = this.#reach.get(fileKey(user, path))!
    const edge = ancestors[filled]
    if (edge !== undefined && this.file(user, edge)) return edge
    return this.#tree.createdAbove(user, path)
  }

  /** Whether some file lies under `path` as a folder, counting this group's own changes. */
  isFolder(user: string, path: string): boolean {
    return this.#reach.get(fileKey(user, path))!.under + this.#tree.changeBelow(user, path) > 0
  }

  /** `created`: the path was no file before. */
  put(user: string, path: string, meta: FileMeta, usage: number, created: boolean): void {
    if (created) this.#tree.add(user, path)
    this.#files.set(fileKey(user, path), meta)
    this.usage.set(user, usage)
  }

  delete(user: string, path: string, usage: number): void {
    this.#files.set(fileKey(user, path), null)
    this.#tree.remove(user, path)
    this.usage.set(user, usage)
  }
}
