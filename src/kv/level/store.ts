import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { HearthEvent } from '../../events/event.js'
import { STORED_LAYOUT, decodeStored, encodeStored, isCurrentLayout, storedPath } from '../../events/stored.js'
import { Serial } from '../../serial.js'
import { writeFileAtomic } from 'hearth-homeserver-client/atomic-file'
import {
  USER_KEY_LENGTH, fileKey, type CommitTx, type LogRead, type CreateUserResult, type FileMeta, type FileRef, type KeyRange,
  type ReadView, type SessionRecord, type Store, type UpstreamCursor, type UserRecord,
  type ConsumerChange, type ConsumerRecord, type CreateConsumerResult,
} from '../store.js'
import { FileBlobs } from './blobs.js'
import { LevelConsumers } from './consumers.js'
import { FOLDER_INDEX, countedAbove, folderKey, isCounted } from './folder-index.js'
import { LevelKV, type RangeCounter } from './level-map.js'
import { LogCursors, seqKey } from './log-cursors.js'
import { LevelReadView } from './read-view.js'
import { asText, type BatchOp, type Range, type ReadOptions, type Value } from './ordered-map.js'

/** Ops per batch while the folder index is rebuilt at open. */
const REBUILD_BATCH = 10_000


export { seqKey }
export const userSeqKey = (user: string, seq: number): string => `${user}:${seqKey(seq)}`

/**
 * The embedded engine: one LevelDB under the data folder, for one process. Commit groups run
 * one at a time through `#commits`, which is what makes their reads see every earlier commit;
 * each lands as one synced batch. Nothing needs installing.
 */
export class LevelStore implements Store {
  readonly engine = 'leveldb'
  readonly location: string
  readonly supports = { manyProcesses: false }
  readonly blobs: FileBlobs
  readonly #kv: LevelKV
  readonly #commits = new Serial()
  /** signup-token redemptions and user creation, which read before they write */
  readonly #accounts = new Serial()
  readonly #claims = new Serial()
  readonly #consumers: LevelConsumers
  readonly #log: LogCursors
  readonly #signOuts = new Set<(secret: string) => void>()

  private constructor(dataDir: string) {
    this.location = resolve(dataDir)
    this.#kv = new LevelKV(join(dataDir, 'db'))
    this.#consumers = new LevelConsumers(this.#kv)
    this.#log = new LogCursors(this.#kv)
    this.blobs = new FileBlobs(join(dataDir, 'blobs'), async (id) => (await this.#kv.get('blobs', id)) !== undefined)
  }

  /** Opens (creating) the store in `dataDir` and sweeps blobs no file references. */
  static async open(dataDir: string): Promise<{ store: LevelStore; swept: number }> {
    await mkdir(dataDir, { recursive: true })
    const store = new LevelStore(dataDir)
    await store.#kv.open()
    await store.blobs.open()
    await store.#indexFolders()
    await store.#storeEventsAs(STORED_LAYOUT)
    await store.#giveFilesTheirSeq()
    await store.#consumers.split()
    const swept = await store.blobs.sweep()
    return { store, swept }
  }

  /**
   * A data folder written with another layout of the folder index, or none, gets it rebuilt at
   * open, in batches; the layout's name is written last, in a synced batch that makes the rest
   * durable with it, so a rebuild cut short starts again at the next open.
   */
  async #indexFolders(): Promise<void> {
    if (asText(await this.#kv.get('meta', 'folders')) === FOLDER_INDEX) return
    let ops: BatchOp[] = []
    const stage = async (op: BatchOp) => {
      ops.push(op)
      if (ops.length < REBUILD_BATCH) return
      await this.#kv.batch(ops)
      ops = []
    }
    for await (const key of this.#kv.keys('folders', {})) await stage({ type: 'del', ns: 'folders', key })
    const counts = new Map<string, number>()
    for await (const key of this.#kv.keys('files', {})) {
      for (const folder of countedAbove(key.slice(0, USER_KEY_LENGTH), key.slice(USER_KEY_LENGTH))) counts.set(folder, (counts.get(folder) ?? 0) + 1)
    }
    for (const [key, n] of counts) await stage({ type: 'put', ns: 'folders', key, value: String(n) })
    ops.push({ type: 'put', ns: 'meta', key: 'folders', value: FOLDER_INDEX })
    await this.#kv.batch(ops, { sync: true })
  }

  /**
   * Events stored in an earlier layout (JSON) are rewritten in the current one at open, in
   * batches. Both layouts read alike (`decodeStored`), so a rewrite cut short loses nothing and
   * goes on at the next open; the layout's name is written last, in a synced batch.
   */
  async #storeEventsAs(layout: string): Promise<void> {
    if (asText(await this.#kv.get('meta', 'events')) === layout) return
    for (const ns of ['log', 'ulog'] as const) {
      let ops: BatchOp[] = []
      for await (const [key, value] of this.#kv.entries(ns, {})) {
        if (isCurrentLayout(value as string)) continue
        ops.push({ type: 'put', ns, key, value: encodeStored(decodeStored(value as string)) })
        if (ops.length < REBUILD_BATCH) continue
        await this.#kv.batch(ops)
        ops = []
      }
      if (ops.length > 0) await this.#kv.batch(ops)
    }
    await this.#kv.batch([{ type: 'put', ns: 'meta', key: 'events', value: layout }], { sync: true })
  }

  /**
   * Files written before their metadata kept the seq of their write get it at open: the seq of
   * the user's last event on the path while the log holds it, else the floor − 1 (their write
   * came no later). One user's events are held at a time, as a map of path to seq; the rest is
   * read in key order and written in batches, the marker last, so a pass cut short starts
   * again and fills only what is still missing.
   */
  async #giveFilesTheirSeq(): Promise<void> {
    if (asText(await this.#kv.get('meta', 'fileSeqs')) === 'kept') return
    const floor = await this.floor()
    let user: string | undefined
    let seqs = new Map<string, number>()
    let ops: BatchOp[] = []
    for await (const [key, value] of this.#kv.entries('files', {})) {
      const meta = JSON.parse(asText(value)!) as FileMeta
      if (meta.seq !== undefined) continue
      if (key.slice(0, USER_KEY_LENGTH) !== user) {
        user = key.slice(0, USER_KEY_LENGTH)
        seqs = new Map()
        for await (const [, ev] of this.#kv.entries('ulog', { gt: `${user}:`, lt: `${user};` })) {
          const e = decodeStored(ev as string)
          seqs.set(e.path, e.seq)
        }
      }
      ops.push({ type: 'put', ns: 'files', key, value: JSON.stringify({ ...meta, seq: seqs.get(key.slice(USER_KEY_LENGTH)) ?? floor - 1 }) })
      if (ops.length < REBUILD_BATCH) continue
      await this.#kv.batch(ops)
      ops = []
    }
    ops.push({ type: 'put', ns: 'meta', key: 'fileSeqs', value: 'kept' })
    await this.#kv.batch(ops, { sync: true })
  }

  readView(): Promise<ReadView> {
    return LevelReadView.open(this.#kv)
  }

  async ping(): Promise<void> {
    await this.#kv.get('meta', 'head')
  }

  async close(): Promise<void> {
    await this.#log.close()
    await this.#kv.close()
  }

  commit<T>(work: (tx: CommitTx) => Promise<T>): Promise<T> {
    return this.#commits.run(async () => {
      const tx = new LevelTx(this.#kv, await this.head())
      let result: T
      let ops: BatchOp[]
      try {
        result = await work(tx)
        ops = await tx.finish()
      } finally {
        await tx.close()
      }
      if (ops.length > 0) await this.#kv.batch(ops, { sync: true })
      // Readers that opened a released blob keep their bytes (an open file outlives unlink).
      for (const id of tx.released) await this.blobs.unlink(id).catch(() => {})
      return result
    })
  }

  async head(): Promise<number> {
    return Number(asText(await this.#kv.get('meta', 'head')) ?? 0)
  }

  async floor(options?: ReadOptions): Promise<number> {
    return Number(asText(await this.#kv.get('meta', 'floor', options)) ?? 1)
  }

  readLog(after: number, upTo: number, limit: number): Promise<LogRead> {
    return this.#log.read(after, upTo, limit)
  }

  /**
   * A page of one user's index and the floor, from one LevelDB snapshot. Pruning raises the
   * floor before it deletes, so a snapshot without an event below its page also has the floor
   * above it. (The whole log is read through `LogCursors`.)
   */
  async #userPage(range: Range, limit: number, keep?: (v: Value) => boolean): Promise<LogRead> {
    const snapshot = this.#kv.snapshot()
    try {
      const floor = await this.floor({ snapshot })
      const found = limit === 0 ? [] : await this.#kv.values('ulog', range, limit, { snapshot, keep })
      return { events: found.map((v) => decodeStored(v as string)), floor }
    } finally {
      await snapshot.close()
    }
  }

  readLogReverse(before: number, limit: number): Promise<HearthEvent[]> {
    return events(this.#kv.values('log', { lt: seqKey(before), reverse: true }, limit))
  }

  readUserLog(user: string, after: number, upTo: number, limit: number, under?: string): Promise<LogRead> {
    return this.#userPage({ gt: userSeqKey(user, after), lte: userSeqKey(user, upTo) }, upTo > after ? limit : 0, pathUnder(under))
  }

  readUserLogReverse(user: string, before: number, limit: number, under?: string): Promise<HearthEvent[]> {
    return events(this.#kv.values('ulog', { gte: `${user}:`, lt: userSeqKey(user, before), reverse: true }, limit, { keep: pathUnder(under) }))
  }

  raiseFloor(floor: number): Promise<number> {
    return this.#commits.run(async () => {
      const now = await this.floor()
      if (floor <= now) return now
      await this.#kv.batch([{ type: 'put', ns: 'meta', key: 'floor', value: String(floor) }], { sync: true })
      this.#log.floorRaised()
      return floor
    })
  }

  async pruneBelowFloor(limit: number): Promise<number> {
    const floor = await this.floor()
    const ops: BatchOp[] = []
    // From the very start, not the old floor: a crash mid-prune leaves entries below it.
    for await (const [k, v] of this.#kv.entries('log', { lt: seqKey(floor), limit })) {
      const ev = decodeStored(v as string)
      ops.push({ type: 'del', ns: 'log', key: k }, { type: 'del', ns: 'ulog', key: userSeqKey(ev.user, ev.seq) })
    }
    if (ops.length > 0) await this.#kv.batch(ops)
    return ops.length / 2
  }

  watch(): () => void {
    return () => {} // one process: every commit is this process's own
  }

  async fileMeta(user: string, path: string): Promise<FileMeta | undefined> {
    return parseMeta(await this.#kv.get('files', fileKey(user, path)))
  }

  async inlineContent(user: string, path: string): Promise<Uint8Array | undefined> {
    const v = await this.#kv.get('content', fileKey(user, path))
    return typeof v === 'string' ? new TextEncoder().encode(v) : v
  }

  fileKeys(range: KeyRange): AsyncIterable<string> {
    return this.#kv.keys('files', range)
  }

  async user(user: string): Promise<UserRecord | undefined> {
    return parseJson<UserRecord>(await this.#kv.get('users', user))
  }

  /** One pass over the users' records: its cost follows the number of users. */
  async totals(): Promise<{ users: number; bytes: number }> {
    let users = 0
    let bytes = 0
    for await (const [, v] of this.#kv.entries('users', {})) {
      users++
      bytes += (parseJson<UserRecord>(v)!).usage
    }
    return { users, bytes }
  }

  createUser(user: string, createdAt: number, signupToken?: string): Promise<CreateUserResult> {
    return this.#accounts.run(async () => {
      if ((await this.#kv.get('users', user)) !== undefined) return 'exists'
      const ops: BatchOp[] = [{ type: 'put', ns: 'users', key: user, value: JSON.stringify({ createdAt, usage: 0 }) }]
      if (signupToken !== undefined) {
        const token = parseJson<StoredToken>(await this.#kv.get('signupTokens', signupToken))
        if (token === undefined) return 'unknown-token'
        if (token.usedBy !== null) return 'used-token'
        ops.push({ type: 'put', ns: 'signupTokens', key: signupToken, value: JSON.stringify({ ...token, usedBy: user }) })
      }
      await this.#kv.batch(ops, { sync: true })
      return 'created'
    })
  }

  addSignupToken(token: string, createdAt: number): Promise<boolean> {
    return this.#accounts.run(async () => {
      if ((await this.#kv.get('signupTokens', token)) !== undefined) return false
      const stored: StoredToken = { createdAt, usedBy: null }
      await this.#kv.batch([{ type: 'put', ns: 'signupTokens', key: token, value: JSON.stringify(stored) }], { sync: true })
      return true
    })
  }

  async putSession(secret: string, session: SessionRecord): Promise<void> {
    await this.#kv.batch([{ type: 'put', ns: 'sessions', key: secret, value: JSON.stringify(session) }], { sync: true })
  }

  async session(secret: string): Promise<SessionRecord | undefined> {
    return parseJson<SessionRecord>(await this.#kv.get('sessions', secret))
  }

  async deleteSession(secret: string): Promise<void> {
    await this.#kv.batch([{ type: 'del', ns: 'sessions', key: secret }], { sync: true })
    for (const listener of this.#signOuts) listener(secret)
  }

  /** One pass over the sessions: run rarely (every few minutes), its cost follows their number. */
  async forgetSessions(createdBefore: number): Promise<number> {
    const gone: string[] = []
    for await (const [secret, v] of this.#kv.entries('sessions', {})) {
      if (parseJson<SessionRecord>(v)!.createdAt < createdBefore) gone.push(secret)
    }
    if (gone.length === 0) return 0
    await this.#kv.batch(gone.map((key) => ({ type: 'del', ns: 'sessions', key })), { sync: true })
    for (const secret of gone) for (const listener of this.#signOuts) listener(secret)
    return gone.length
  }

  onSessionDeleted(listener: (secret: string) => void): () => void {
    this.#signOuts.add(listener)
    return () => this.#signOuts.delete(listener)
  }

  claimToken(key: string, expiresAt: number): Promise<boolean> {
    return this.#claims.run(async () => {
      if ((await this.#kv.get('replay', key)) !== undefined) return false
      await this.#kv.batch([{ type: 'put', ns: 'replay', key, value: String(expiresAt) }], { sync: true })
      return true
    })
  }

  forgetTokens(now: number): Promise<number> {
    return this.#claims.run(async () => {
      const ops: BatchOp[] = []
      for await (const [key, v] of this.#kv.entries('replay', {})) {
        if (Number(v) < now) ops.push({ type: 'del', ns: 'replay', key })
      }
      if (ops.length > 0) await this.#kv.batch(ops)
      return ops.length
    })
  }

  /** Kept in `homeserver.key` in the data folder, as 64 hex characters. */
  homeserverSecret(generate: () => Uint8Array): Promise<Uint8Array> {
    return this.#accounts.run(() => this.#secret(generate))
  }

  async #secret(generate: () => Uint8Array): Promise<Uint8Array> {
    const file = join(this.location, 'homeserver.key')
    try {
      const hex = (await readFile(file, 'utf8')).trim()
      if (/^[0-9a-f]{64}$/i.test(hex)) return Uint8Array.from(Buffer.from(hex, 'hex'))
      throw new Error(`${file} does not hold 64 hex characters`)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const secret = generate()
    await writeFileAtomic(file, Buffer.from(secret).toString('hex') + '\n', { mode: 0o600 })
    return secret
  }

  async upstreamCursors(names?: readonly string[]): Promise<UpstreamCursor[]> {
    if (names !== undefined) return (await this.#kv.getMany('upstreams', [...names])).flatMap((v) => parseJson<UpstreamCursor>(v) ?? [])
    const out: UpstreamCursor[] = []
    for await (const [, v] of this.#kv.entries('upstreams', {})) out.push(parseJson<UpstreamCursor>(v)!)
    return out
  }

  consumers(owner: string): Promise<ConsumerRecord[]> {
    return this.#consumers.list(owner)
  }

  consumer(owner: string, id: string): Promise<ConsumerRecord | undefined> {
    return this.#consumers.get(owner, id)
  }

  createConsumer(record: ConsumerRecord, maxPerOwner: number): Promise<CreateConsumerResult> {
    return this.#consumers.create(record, maxPerOwner)
  }

  updateConsumer<T>(owner: string, id: string, change: (record: ConsumerRecord) => ConsumerChange<T>): Promise<ConsumerChange<T> | undefined> {
    return this.#consumers.update(owner, id, change)
  }

  deleteConsumer(owner: string, id: string): Promise<boolean> {
    return this.#consumers.delete(owner, id)
  }
}

interface StoredToken {
  createdAt: number
  usedBy: string | null
}

/** Reads go straight to the database (commits are serialised); writes wait in `#ops`. */
class LevelTx implements CommitTx {
  readonly head: number
  readonly #kv: LevelKV
  readonly #ops: BatchOp[] = []
  readonly #pendingUsage = new Map<string, number>()
  /** the counted folders above each file this commit adds (+1) or removes (-1) */
  readonly #counted: { above: string[]; by: 1 | -1 }[] = []
  /**
   * Stored counts this commit has read (0: no file below). The clash check's reads
   * (`countUnder`) leave here most of what `finish` needs.
   */
  readonly #stored = new Map<string, number>()
  /** range reads of the file keys below folders deeper than the counted levels */
  readonly #ranges: RangeCounter
  /** what those reads found, by key prefix, and the cap each counted up to */
  readonly #ranged = new Map<string, { cap: number; n: Promise<number> }>()
  #appended = 0

  constructor(kv: LevelKV, head: number) {
    this.#kv = kv
    this.head = head
    this.#ranges = kv.rangeCounter('files')
  }

  async files(refs: readonly FileRef[]): Promise<(FileMeta | undefined)[]> {
    const values = await this.#kv.getMany('files', refs.map((r) => fileKey(r.user, r.path)))
    return values.map(parseMeta)
  }

  async users(users: readonly string[]): Promise<(UserRecord | undefined)[]> {
    return (await this.#kv.getMany('users', [...users])).map((v) => parseJson<UserRecord>(v))
  }

  /**
   * Counted folders read their count; deeper ones count their range of file keys, up to
   * `cap`. A commit reads a counted folder's count once, and a deep folder's range once for
   * each larger cap, however many of its paths ask about it.
   */
  async countUnder(folders: readonly FileRef[], cap: number): Promise<number[]> {
    const keys = folders.map((f) => (isCounted(f.path) ? folderKey(f.user, f.path) : undefined))
    const unread = new Set(keys.filter((key): key is string => key !== undefined && !this.#stored.has(key)))
    const [, ranged] = await Promise.all([
      this.#read([...unread]),
      Promise.all(folders.map((f, i) => (keys[i] === undefined ? this.#rangeCount(fileKey(f.user, f.path + '/'), cap) : 0))),
    ])
    return keys.map((key, i) => (key === undefined ? ranged[i]! : Math.min(cap, this.#stored.get(key)!)))
  }

  /** The file keys starting with `prefix`, up to `cap`: counted once per commit. */
  #rangeCount(prefix: string, cap: number): Promise<number> {
    const known = this.#ranged.get(prefix)
    if (known !== undefined && known.cap >= cap) return known.n.then((n) => Math.min(n, cap))
    const n = this.#ranges.count(prefix, cap)
    this.#ranged.set(prefix, { cap, n })
    return n
  }

  /** Stored counts of these folders, kept for `finish`. */
  async #read(keys: readonly string[]): Promise<number[]> {
    if (keys.length === 0) return []
    const counts = (await this.#kv.getMany('folders', [...keys])).map((v) => Number(asText(v) ?? 0))
    keys.forEach((key, i) => this.#stored.set(key, counts[i]!))
    return counts
  }

  putFile(user: string, path: string, meta: FileMeta, inline: Uint8Array | undefined, old: FileMeta | undefined): void {
    const key = fileKey(user, path)
    if (old === undefined) this.#counted.push({ above: countedAbove(user, path), by: +1 })
    this.#ops.push({ type: 'put', ns: 'files', key, value: JSON.stringify(meta) })
    if (meta.blob !== undefined) {
      this.#ops.push({ type: 'put', ns: 'blobs', key: meta.blob, value: key })
      if (old !== undefined && old.blob === undefined) this.#ops.push({ type: 'del', ns: 'content', key })
    } else {
      this.#ops.push({ type: 'put', ns: 'content', key, value: inline ?? new Uint8Array() })
    }
    if (old?.blob !== undefined && old.blob !== meta.blob) this.#release(old.blob)
  }

  /** Blobs whose files this commit stopped referencing: deleted once it is durable. */
  readonly released: string[] = []

  #release(id: string): void {
    this.#ops.push({ type: 'del', ns: 'blobs', key: id })
    this.released.push(id)
  }

  deleteFile(user: string, path: string, old: FileMeta): void {
    const key = fileKey(user, path)
    this.#counted.push({ above: countedAbove(user, path), by: -1 })
    this.#ops.push({ type: 'del', ns: 'files', key }, { type: 'del', ns: 'content', key })
    if (old.blob !== undefined) this.#release(old.blob)
  }

  setUsage(user: string, usage: number): void {
    this.#pendingUsage.set(user, usage)
  }

  append(events: readonly HearthEvent[]): void {
    for (const ev of events) {
      if (ev.seq !== this.head + this.#appended + 1) throw new RangeError(`seq ${ev.seq} does not follow ${this.head + this.#appended}`)
      const value = encodeStored(ev)
      this.#ops.push({ type: 'put', ns: 'log', key: seqKey(ev.seq), value }, { type: 'put', ns: 'ulog', key: userSeqKey(ev.user, ev.seq), value })
      this.#appended++
    }
  }

  /**
   * The counts this commit's files change. Those the clash check read are known; a folder
   * below one with no file below it has none either; the rest are read here.
   */
  async #folderCounts(): Promise<Map<string, number>> {
    const unread = new Set<string>()
    for (const { above } of this.#counted) {
      const empty = above.findIndex((key) => this.#stored.get(key) === 0)
      above.forEach((key, i) => {
        if (empty !== -1 && i > empty) this.#stored.set(key, 0)
        else if (!this.#stored.has(key)) unread.add(key)
      })
    }
    await this.#read([...unread])
    const counts = new Map<string, number>()
    for (const { above, by } of this.#counted) {
      for (const key of above) counts.set(key, (counts.get(key) ?? this.#stored.get(key)!) + by)
    }
    return counts
  }

  async upstreamCursors(upstreams: readonly string[]): Promise<(UpstreamCursor | undefined)[]> {
    return (await this.#kv.getMany('upstreams', [...upstreams])).map((v) => parseJson<UpstreamCursor>(v))
  }

  async upstreamCursorsUnder(prefixes: readonly string[]): Promise<UpstreamCursor[][]> {
    return (await this.#kv.entriesUnder('upstreams', prefixes)).map((entries) => entries.map(([, v]) => parseJson<UpstreamCursor>(v)!))
  }

  setUpstreamCursor(cursor: UpstreamCursor): void {
    this.#ops.push({ type: 'put', ns: 'upstreams', key: cursor.upstream, value: JSON.stringify(cursor) })
  }

  /** Ends the range reads; called once the commit's work is done, whatever its outcome. */
  async close(): Promise<void> {
    await this.#ranges.close()
  }

  /** Everything staged, plus the users' new usage (read back for their createdAt) and the head. */
  async finish(): Promise<BatchOp[]> {
    for (const [key, n] of await this.#folderCounts()) {
      if (n === this.#stored.get(key)) continue
      this.#ops.push(n > 0 ? { type: 'put', ns: 'folders', key, value: String(n) } : { type: 'del', ns: 'folders', key })
    }
    if (this.#pendingUsage.size > 0) {
      const users = [...this.#pendingUsage.keys()]
      const records = await this.users(users)
      users.forEach((user, i) => {
        const rec = records[i]
        if (rec === undefined) return
        this.#ops.push({ type: 'put', ns: 'users', key: user, value: JSON.stringify({ ...rec, usage: this.#pendingUsage.get(user) }) })
      })
    }
    if (this.#appended > 0) this.#ops.push({ type: 'put', ns: 'meta', key: 'head', value: String(this.head + this.#appended) })
    return this.#ops
  }
}

/** Keeps the stored events whose path starts with `under` (all when it is not given). */
function pathUnder(under: string | undefined): ((v: Value) => boolean) | undefined {
  return under === undefined ? undefined : (v) => storedPath(v as string).startsWith(under)
}

async function events(values: Promise<Value[]>): Promise<HearthEvent[]> {
  return (await values).map((value) => decodeStored(value as string))
}

function parseJson<T>(v: Value | undefined): T | undefined {
  const text = asText(v)
  return text === undefined ? undefined : (JSON.parse(text) as T)
}

function parseMeta(v: Value | undefined): FileMeta | undefined {
  return parseJson<FileMeta>(v)
}
