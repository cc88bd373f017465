import type { HearthEvent } from '../../events/event.js'
import type {
  CommitTx,
  CreateUserResult,
  FileMeta,
  KeyRange,
  SessionRecord,
  Store,
  StoreSupports,
  UserRecord,
} from '../store.js'
import { fileKey } from '../store.js'
import { AccountTables } from './accounts.js'
import { PostgresBlobStore } from './blobs.js'
import { PostgresCommitTx, toMeta, type FileRow, type LockStats } from './commit.js'
import { connect, redact, type Sql } from './connect.js'
import { EventTable } from './events.js'
import { fileKeys } from './file-keys.js'
import { silentLog, type StoreLog } from './log-types.js'
import { applyMigrations } from './migrate.js'
import { SessionTable } from './sessions.js'
import { CommitWatcher } from './watch.js'

export interface PostgresStoreOptions {
  log?: StoreLog
  /** connections in the pool (LISTEN takes one more) */
  max?: number
}

/** How often released and abandoned blobs are swept while the store is open. */
const SWEEP_EVERY_MS = 10 * 60_000
const PING_TIMEOUT_MS = 2000

/**
 * Connects to `url`, checks the database stores text as UTF-8 (byte order depends on it),
 * applies pending migrations, starts listening for commits and sign-outs, and sweeps blobs
 * once. Rejects, with the URL (password hidden) in the message, when any of it fails.
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const log = options.log ?? silentLog
  const sql = connect(url, { max: options.max })
  try {
    const [enc] = await sql<{ server_encoding: string }[]>`SHOW server_encoding`
    if (enc!.server_encoding !== 'UTF8') throw new Error(`the database's encoding is ${enc!.server_encoding}; Hearth needs UTF8`)
    const applied = await applyMigrations(sql)
    if (applied.length > 0) log.info({ versions: applied }, 'applied schema migrations')
    const store = new PostgresStore(sql, redact(url), log)
    await store.start()
    return store
  } catch (err) {
    await sql.end({ timeout: 1 }).catch(() => {})
    throw new Error(`PostgreSQL at ${redact(url)}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * The Store for many processes on one PostgreSQL database. Every shared fact lives in the
 * database, and every "exactly once" is a row constraint or the commit lock; nothing that
 * another process could change is cached here.
 */
export class PostgresStore implements Store {
  readonly engine = 'postgres'
  readonly location: string
  readonly supports: StoreSupports = { manyProcesses: true }
  readonly blobs: PostgresBlobStore
  readonly #sql: Sql
  readonly #log: StoreLog
  readonly #events: EventTable
  readonly #accounts: AccountTables
  readonly #sessions: SessionTable
  readonly #watcher: CommitWatcher
  readonly #lock: LockStats = { groups: 0, lastMs: 0, maxMs: 0, totalMs: 0 }
  #sweeper: NodeJS.Timeout | undefined
  #closing: Promise<void> | undefined

  constructor(sql: Sql, location: string, log: StoreLog) {
    this.#sql = sql
    this.location = location
    this.#log = log
    this.blobs = new PostgresBlobStore(sql)
    this.#events = new EventTable(sql)
    this.#accounts = new AccountTables(sql)
    this.#sessions = new SessionTable(sql, log)
    this.#watcher = new CommitWatcher(sql, log, () => this.#events.head())
  }

  /** @internal called once by openPostgresStore */
  async start(): Promise<void> {
    await Promise.all([this.#watcher.start(), this.#sessions.start()])
    await this.#sweep()
    this.#sweeper = setInterval(() => void this.#sweep(), SWEEP_EVERY_MS).unref()
  }

  async #sweep(): Promise<void> {
    try {
      const swept = await this.blobs.sweep()
      if (swept > 0) this.#log.info({ swept }, 'removed released and abandoned blobs')
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'sweeping blobs failed; trying again later')
    }
  }

  async ping(): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`PostgreSQL did not answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS)
    })
    try {
      await Promise.race([this.#sql`SELECT 1`, late])
    } finally {
      clearTimeout(timer)
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#sweeper)
      await Promise.all([this.#watcher.stop(), this.#sessions.stop()])
      await this.#sql.end({ timeout: 5 })
    })()
    return this.#closing
  }

  /**
   * One transaction: take the commit lock (the `head` row, FOR UPDATE), run `work` with
   * reads inside the transaction and writes staged, write what it staged, raise the head,
   * NOTIFY, COMMIT. A throw anywhere rolls everything back, seqs included. If the connection
   * is lost during COMMIT the outcome is unknown to us (it landed whole or not at all): the
   * next group reads the head again, so either way no seq is skipped or reused.
   */
  async commit<T>(work: (tx: CommitTx) => Promise<T>): Promise<T> {
    let locked: number | undefined
    try {
      const done = await this.#sql.begin(async (sql) => {
        const [row] = await sql<{ value: number }[]>`SELECT value FROM log_bounds WHERE name = 'head' FOR UPDATE`
        locked = performance.now()
        const tx = new PostgresCommitTx(sql, row!.value)
        const result = await work(tx)
        await tx.write()
        // wrapped: the driver would await a returned array's items
        return { result }
      })
      return done.result as T
    } finally {
      if (locked !== undefined) this.#held(performance.now() - locked)
    }
  }

  #held(ms: number): void {
    const s = this.#lock
    s.groups++
    s.lastMs = ms
    s.totalMs += ms
    if (ms > s.maxMs) s.maxMs = ms
  }

  /**
   * How long this process's commit groups held the commit lock: from the lock's grant to
   * COMMIT's answer, measured here (so it includes one network round trip). Every instance
   * queues on the same lock, so 1000 / average hold is the ceiling of groups per second.
   */
  get lockStats(): Readonly<LockStats> {
    return { ...this.#lock }
  }

  get lastLockHoldMs(): number {
    return this.#lock.lastMs
  }

  head(): Promise<number> {
    return this.#events.head()
  }

  floor(): Promise<number> {
    return this.#events.floor()
  }

  readLog(after: number, upTo: number, limit: number): Promise<HearthEvent[]> {
    return this.#events.read(after, upTo, limit)
  }

  readLogReverse(before: number, limit: number): Promise<HearthEvent[]> {
    return this.#events.readReverse(before, limit)
  }

  readUserLog(user: string, after: number, upTo: number, limit: number): Promise<HearthEvent[]> {
    return this.#events.readUser(user, after, upTo, limit)
  }

  readUserLogReverse(user: string, before: number, limit: number): Promise<HearthEvent[]> {
    return this.#events.readUserReverse(user, before, limit)
  }

  raiseFloor(floor: number): Promise<number> {
    return this.#events.raiseFloor(floor)
  }

  pruneBelowFloor(limit: number): Promise<number> {
    return this.#events.pruneBelowFloor(limit)
  }

  watch(listener: (head?: number) => void): () => void {
    return this.#watcher.add(listener)
  }

  async fileMeta(user: string, path: string): Promise<FileMeta | undefined> {
    const [row] = await this.#sql<FileRow[]>`
      SELECT key, size, hash, type, mtime, blob FROM files WHERE key = ${fileKey(user, path)}`
    return row === undefined ? undefined : toMeta(row)
  }

  async inlineContent(user: string, path: string): Promise<Uint8Array | undefined> {
    const [row] = await this.#sql<{ content: Buffer | null }[]>`
      SELECT content FROM files WHERE key = ${fileKey(user, path)}`
    return row?.content ?? undefined
  }

  fileKeys(range: KeyRange): AsyncIterable<string> {
    return fileKeys(this.#sql, range)
  }

  user(user: string): Promise<UserRecord | undefined> {
    return this.#accounts.user(user)
  }

  createUser(user: string, createdAt: number, signupToken?: string): Promise<CreateUserResult> {
    return this.#accounts.createUser(user, createdAt, signupToken)
  }

  addSignupToken(token: string, createdAt: number): Promise<boolean> {
    return this.#accounts.addSignupToken(token, createdAt)
  }

  putSession(secret: string, session: SessionRecord): Promise<void> {
    return this.#sessions.put(secret, session)
  }

  session(secret: string): Promise<SessionRecord | undefined> {
    return this.#sessions.get(secret)
  }

  deleteSession(secret: string): Promise<void> {
    return this.#sessions.delete(secret)
  }

  onSessionDeleted(listener: (secret: string) => void): () => void {
    return this.#sessions.onDeleted(listener)
  }

  claimToken(key: string, expiresAt: number): Promise<boolean> {
    return this.#accounts.claimToken(key, expiresAt)
  }

  forgetTokens(now: number): Promise<number> {
    return this.#accounts.forgetTokens(now)
  }

  homeserverSecret(generate: () => Uint8Array): Promise<Uint8Array> {
    return this.#accounts.homeserverSecret(generate)
  }
}
