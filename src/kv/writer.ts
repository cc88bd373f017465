import { HearthError, fail } from '../errors.js'
import type { HearthEvent } from '../events/event.js'
import { EventLog, seqKey, userSeqKey } from '../events/log.js'
import { fileAncestors } from '../paths.js'
import { asText, type BatchOp, type KV, type Value } from './backend.js'
import type { BlobStore } from './blobs.js'
import { fileKey, type FileMeta } from './files.js'

export type Mutation =
  | { type: 'PUT'; user: string; path: string; meta: FileMeta; inline?: Uint8Array }
  | { type: 'DEL'; user: string; path: string }

interface Pending {
  op: Mutation
  resolve: (ev: HearthEvent) => void
  reject: (err: unknown) => void
}

interface UserRecord {
  createdAt: number
  usage: number
}

/** Upper bound on mutations per commit, to bound the time one group holds the others back. */
const MAX_GROUP = 1024

/**
 * The one write path. Every PUT and DELETE becomes one atomic batch holding the file's
 * metadata, its inline content or blob reference, its event in the global log and the
 * per-user index, and the user's usage. Batches are group-committed: while one group is
 * being fsynced, newcomers queue, and the next group takes them all, so concurrent writers
 * share fsyncs. A promise resolves only after its group is on disk and announced.
 *
 * Groups are prepared and committed strictly one after another, so each mutation is checked
 * against the state left by every mutation before it (the overlay holds this group's own
 * effects), and seqs are handed out in commit order without gaps: a mutation refused during
 * preparation gets no seq, and a failed commit takes its seqs back.
 */
export class Writer {
  readonly #kv: KV
  readonly #log: EventLog
  readonly #blobs: BlobStore
  readonly #quota: number
  readonly #queue: Pending[] = []
  #running: Promise<void> | undefined
  #busySince: number | undefined
  #lastSeq = 0

  constructor(kv: KV, log: EventLog, blobs: BlobStore, quota: number) {
    this.#kv = kv
    this.#log = log
    this.#blobs = blobs
    this.#quota = quota
  }

  start(): void {
    this.#lastSeq = this.#log.head
  }

  submit(op: Mutation): Promise<HearthEvent> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ op, resolve, reject })
      this.#running ??= this.#drain()
    })
  }

  /** When the group being committed now started (`performance.now()`); undefined when idle. */
  get busySince(): number | undefined {
    return this.#busySince
  }

  /** Resolves once everything submitted so far is committed or refused. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        this.#busySince = performance.now()
        await this.#commit(this.#queue.splice(0, MAX_GROUP))
      }
    } finally {
      this.#busySince = undefined
      // Cleared in the same tick as the last empty-queue check: a `.finally()` callback would
      // run ticks later, and a submit landing in between would find a drain still "running",
      // start none, and wait forever.
      this.#running = undefined
    }
  }

  async #commit(group: Pending[]): Promise<void> {
    const state = new GroupState(this.#kv)
    // Every read the group needs, issued at once: the checks below then run from memory, so
    // a group costs a few concurrent reads and one fsync, not a chain of reads per mutation.
    try {
      await state.prefetch(group.map((p) => p.op))
    } catch (err) {
      // Reads failed (e.g. a request that outlived shutdown finds the database closed): refuse
      // the whole group. Thrown on, it would leave every promise pending and crash the drain.
      for (const p of group) {
        this.#discard(p.op)
        p.reject(err)
      }
      return
    }
    const ops: BatchOp[] = []
    const done: { p: Pending; ev: HearthEvent; dead?: string }[] = []
    const ts = Date.now()
    for (const p of group) {
      try {
        const { ev, dead } = await this.#prepare(p.op, state, ops, this.#lastSeq + done.length + 1, ts)
        done.push({ p, ev, dead })
      } catch (err) {
        this.#discard(p.op)
        p.reject(err)
      }
    }
    if (done.length === 0) return
    for (const [user, rec] of state.users) ops.push({ type: 'put', ns: 'users', key: user, value: JSON.stringify(rec) })
    ops.push({ type: 'put', ns: 'meta', key: 'head', value: String(this.#lastSeq + done.length) })
    try {
      await this.#kv.batch(ops, { sync: true })
    } catch (err) {
      for (const d of done) {
        this.#discard(d.p.op)
        d.p.reject(err)
      }
      return
    }
    this.#lastSeq += done.length
    this.#log.announce(done.map((d) => d.ev))
    for (const d of done) d.p.resolve(d.ev)
    for (const d of done) if (d.dead !== undefined) await this.#blobs.remove(d.dead).catch(() => {})
  }

  /** A refused PUT leaves its freshly written blob unreferenced: remove it now. */
  #discard(op: Mutation): void {
    if (op.type === 'PUT' && op.meta.blob !== undefined) void this.#blobs.remove(op.meta.blob).catch(() => {})
  }

  async #prepare(op: Mutation, state: GroupState, ops: BatchOp[], seq: number, ts: number): Promise<{ ev: HearthEvent; dead?: string }> {
    const key = fileKey(op.user, op.path)
    const old = await state.file(key)
    const user = await state.user(op.user)
    let ev: HearthEvent
    if (op.type === 'PUT') {
      await this.#checkClash(op.user, op.path, state)
      const usage = user.usage - (old?.size ?? 0) + op.meta.size
      if (usage > this.#quota) fail('InsufficientStorage', 'Storage quota exceeded')
      user.usage = usage
      const meta: FileMeta = { ...op.meta, mtime: ts }
      state.files.set(key, meta)
      ops.push({ type: 'put', ns: 'files', key, value: JSON.stringify(meta) })
      if (meta.blob !== undefined) {
        ops.push({ type: 'put', ns: 'blobs', key: meta.blob, value: key })
        if (old?.blob === undefined) ops.push({ type: 'del', ns: 'content', key })
      } else {
        ops.push({ type: 'put', ns: 'content', key, value: op.inline ?? new Uint8Array() })
      }
      ev = { seq, type: 'PUT', user: op.user, path: op.path, contentHash: meta.hash, size: meta.size, ts }
    } else {
      if (old === undefined) fail('NotFound', 'Not found')
      user.usage = Math.max(0, user.usage - old.size)
      state.files.set(key, null)
      ops.push({ type: 'del', ns: 'files', key }, { type: 'del', ns: 'content', key })
      ev = { seq, type: 'DEL', user: op.user, path: op.path, ts }
    }
    if (old?.blob !== undefined) ops.push({ type: 'del', ns: 'blobs', key: old.blob })
    const value = JSON.stringify(ev)
    ops.push({ type: 'put', ns: 'log', key: seqKey(seq), value })
    ops.push({ type: 'put', ns: 'ulog', key: userSeqKey(op.user, seq), value })
    return { ev, dead: old?.blob }
  }

  /** A file may not sit where a directory is, nor a directory where a file is. */
  async #checkClash(user: string, path: string, state: GroupState): Promise<void> {
    for (const dir of fileAncestors(path)) {
      if (await state.file(fileKey(user, dir))) fail('Conflict', `${dir} is a file`)
    }
    const prefix = fileKey(user, path) + '/'
    if (await state.hasChildren(prefix)) fail('Conflict', `${path} is a directory`)
  }
}

function parseMeta(v: Value | undefined): FileMeta | null {
  const text = asText(v)
  return text === undefined ? null : (JSON.parse(text) as FileMeta)
}

/** What one group has read and changed so far: later mutations in the group see it. */
class GroupState {
  readonly files = new Map<string, FileMeta | null>()
  readonly users = new Map<string, UserRecord>()
  readonly #kv: KV
  /** for each directory prefix a PUT needs checked: its first key in the store, if any */
  readonly #firstChild = new Map<string, string | undefined>()

  constructor(kv: KV) {
    this.#kv = kv
  }

  async prefetch(ops: readonly Mutation[]): Promise<void> {
    const keys = new Set<string>()
    const users = new Set<string>()
    const dirs = new Set<string>()
    for (const op of ops) {
      keys.add(fileKey(op.user, op.path))
      users.add(op.user)
      if (op.type !== 'PUT') continue
      for (const dir of fileAncestors(op.path)) keys.add(fileKey(op.user, dir))
      dirs.add(fileKey(op.user, op.path) + '/')
    }
    const [k, u, d] = [[...keys], [...users], [...dirs]]
    const [files, records, firsts] = await Promise.all([
      this.#kv.getMany('files', k),
      this.#kv.getMany('users', u),
      Promise.all(d.map((prefix) => this.#first(prefix))),
    ])
    k.forEach((key, i) => this.files.set(key, parseMeta(files[i])))
    u.forEach((user, i) => {
      const v = asText(records[i])
      if (v !== undefined) this.users.set(user, JSON.parse(v) as UserRecord)
    })
    d.forEach((prefix, i) => this.#firstChild.set(prefix, firsts[i]))
  }

  async #first(prefix: string): Promise<string | undefined> {
    for await (const key of this.#kv.keys('files', { gte: prefix, lt: prefix.slice(0, -1) + '0', limit: 1 })) return key
    return undefined
  }

  async file(key: string): Promise<FileMeta | undefined> {
    if (!this.files.has(key)) this.files.set(key, parseMeta(await this.#kv.get('files', key)))
    return this.files.get(key) ?? undefined
  }

  async user(user: string): Promise<UserRecord> {
    let rec = this.users.get(user)
    if (rec === undefined) {
      const v = asText(await this.#kv.get('users', user))
      if (v === undefined) throw new HearthError('Unauthorized', 'Unknown user')
      rec = JSON.parse(v) as UserRecord
      this.users.set(user, rec)
    }
    return rec
  }

  async hasChildren(prefix: string): Promise<boolean> {
    for (const [k, v] of this.files) if (v !== null && k.startsWith(prefix)) return true
    if (this.#firstChild.has(prefix)) {
      const first = this.#firstChild.get(prefix)
      if (first === undefined) return false // none stored, and none added in this group (above)
      if (this.files.get(first) !== null) return true
      // that child was deleted earlier in this group: look further
    }
    const end = prefix.slice(0, -1) + '0'
    for await (const k of this.#kv.keys('files', { gte: prefix, lt: end })) {
      if (this.files.get(k) !== null) return true
    }
    return false
  }
}
