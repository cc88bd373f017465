import type { HearthEvent } from '../../events/event.js'
import type {
  LogRead,
  CommitTx,
  ConsumerChange,
  ConsumerRecord,
  CreateConsumerResult,
  CreateUserResult,
  FileMeta,
  KeyRange,
  ReadView,
  SessionRecord,
  Store,
  StoreSupports,
  UpstreamCursor,
  UserRecord,
} from '../store.js'
import { WriteRefused, fileKey } from '../store.js'
import { AccountTables } from './accounts.js'
import { PostgresBlobStore } from './blobs.js'
import { FILE_COLUMNS, PostgresCommitTx, toMeta, type FileRow, type LockStats } from './commit.js'
import { PostgresReadView } from './read-view.js'
import type pg from 'pg'
import { connect, redact, transaction } from './connect.js'
import { ConsumerTable } from './consumers.js'
import { EventTable } from './events.js'
import { fileKeys } from './file-keys.js'
import { keyIdentity } from './key-parts.js'
import { silentLog, type StoreLog } from './log-types.js'
import { applyMigrations } from './migrate.js'
import { Notifications } from './notifications.js'
import { SessionTable } from './sessions.js'
import { CommitWatcher } from './watch.js'

export interface PostgresStoreOptions {
  log?: StoreLog
  /** connections in the pool (LISTEN takes one more) */
  max?: number
  /** lock and statement timeouts (connect.ts has the defaults) */
  lockTimeoutMs?: number
  statementTimeoutMs?: number
  /** how often the head is read in case a commit notification was lost (watch.ts has the default) */
  pollMs?: number
}

/** How often released and abandoned blobs are swept while the store is open. */
const SWEEP_EVERY_MS = 10 * 60_000
const PING_TIMEOUT_MS = 2000

/**
 * Connects to `url`, checks the database stores text as UTF-8 and commits durably,
 * applies pending migrations, starts listening for commits and sign-outs, and sweeps blobs
 * once. Rejects, with the URL (password hidden) in the message, when any of it fails.
 */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const log = options.log ?? silentLog
  const pool = connect(url, { max: options.max, log, lockTimeoutMs: options.lockTimeoutMs, statementTimeoutMs: options.statementTimeoutMs })
  const notifications = new Notifications(url, log)
  try {
    await checkSettings(pool)
    const applied = await applyMigrations(pool)
    if (applied.length > 0) log.info({ versions: applied }, 'applied schema migrations')
    const store = new PostgresStore(pool, notifications, redact(url), log, options.pollMs)
    const rewritten = await store.rewriteOldEvents()
    if (rewritten > 0) log.info({ events: rewritten }, 'rewrote events stored in an earlier layout')
    const given = await store.giveFilesTheirSeq()
    if (given > 0) log.info({ files: given }, 'gave files written before the seq of their write')
    await store.start()
    return store
  } catch (err) {
    await notifications.stop()
    await pool.end().catch(() => {})
    throw new Error(`PostgreSQL at ${redact(url)}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * What Hearth's promises rest on, as its connections see the database: text stored as UTF-8
 * (byte order depends on it), and commits durable before they return — an acknowledged write
 * must survive a crash of the server, which `synchronous_commit = off` (set for the server,
 * the database, the role or in the URL's options) gives up. Every other value of it waits
 * for the local flush at least.
 */
async function checkSettings(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ encoding: string; sync: string }>(
    "SELECT current_setting('server_encoding') AS encoding, current_setting('synchronous_commit') AS sync",
  )
  const { encoding, sync } = rows[0]!
  if (encoding !== 'UTF8') throw new Error(`the database's encoding is ${encoding}; Hearth needs UTF8`)
  if (sync === 'off') {
    throw new Error(
      'synchronous_commit is off for these connections, so an acknowledged write could be lost in a crash; ' +
        'Hearth needs it on (ALTER DATABASE … SET synchronous_commit = on, or for the role, or in postgresql.conf)',
    )
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
  readonly #pool: pg.Pool
  readonly #notifications: Notifications
  readonly #log: StoreLog
  readonly #events: EventTable
  readonly #accounts: AccountTables
  readonly #sessions: SessionTable
  readonly #consumers: ConsumerTable
  readonly #watcher: CommitWatcher
  readonly #lock: LockStats = { groups: 0, lastMs: 0, maxMs: 0, totalMs: 0 }
  #sweeper: NodeJS.Timeout | undefined
  #closing: Promise<void> | undefined

  constructor(pool: pg.Pool, notifications: Notifications, location: string, log: StoreLog, pollMs?: number) {
    this.#pool = pool
    this.#notifications = notifications
    this.location = location
    this.#log = log
    this.blobs = new PostgresBlobStore(pool)
    this.#events = new EventTable(pool)
    this.#accounts = new AccountTables(pool)
    this.#sessions = new SessionTable(pool, notifications, log)
    this.#consumers = new ConsumerTable(pool)
    this.#watcher = new CommitWatcher(notifications, log, () => this.#events.head(), pollMs)
  }

  /** @internal called once by openPostgresStore: events of an earlier layout are stored anew */
  rewriteOldEvents(): Promise<number> {
    return this.#events.rewriteOld()
  }

  /**
   * @internal called once by openPostgresStore: files written before their row kept the seq of
   * their write get it, in batches: the user's last event on the path while the log holds it,
   * else the floor − 1 (their write came no later). Instances that run it at once agree.
   */
  async giveFilesTheirSeq(batch = 1000): Promise<number> {
    let given = 0
    for (;;) {
      const { rowCount } = await this.#pool.query(
        `WITH missing AS (SELECT key, user_id, key_start, key_rest_hash FROM files WHERE seq IS NULL LIMIT $1)
         UPDATE files f SET seq = COALESCE(
           (SELECT max(e.seq) FROM events e WHERE e.user_id = m.user_id AND e.path = substr(m.key, 53)),
           (SELECT value - 1 FROM log_bounds WHERE name = 'floor'))
         FROM missing m WHERE f.key_start = m.key_start AND f.key_rest_hash = m.key_rest_hash AND f.seq IS NULL`,
        [batch],
      )
      if ((rowCount ?? 0) === 0) return given
      given += rowCount ?? 0
    }
  }

  /** @internal called once by openPostgresStore: listening first, so nothing from then on is missed */
  async start(): Promise<void> {
    await this.#notifications.start()
    await this.#watcher.start()
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
      await Promise.race([this.#pool.query('SELECT 1'), late])
    } finally {
      clearTimeout(timer)
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#sweeper)
      this.#watcher.stop()
      this.#sessions.stop()
      await this.#notifications.stop()
      await this.#pool.end()
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
      return await transaction(this.#pool, async (client) => {
        const { rows } = await client.query<{ value: number }>("SELECT value FROM log_bounds WHERE name = 'head' FOR UPDATE")
        locked = performance.now()
        const tx = new PostgresCommitTx(client, rows[0]!.value)
        const result = await work(tx)
        await tx.write()
        return result
      })
    } catch (err) {
      // SQLSTATE classes 22 (data exception), 23 (integrity) and 54 (program limit exceeded,
      // such as an index row too large): the content was refused, the database is fine
      const code = (err as { code?: unknown }).code
      if (typeof code === 'string' && /^(22|23|54)/.test(code)) throw new WriteRefused((err as Error).message, { cause: err })
      throw err
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

  readLog(after: number, upTo: number, limit: number): Promise<LogRead> {
    return this.#events.read(after, upTo, limit)
  }

  readLogReverse(before: number, limit: number): Promise<HearthEvent[]> {
    return this.#events.readReverse(before, limit)
  }

  readUserLog(user: string, after: number, upTo: number, limit: number, under?: string): Promise<LogRead> {
    return this.#events.readUser(user, after, upTo, limit, under)
  }

  readUserLogReverse(user: string, before: number, limit: number, under?: string): Promise<HearthEvent[]> {
    return this.#events.readUserReverse(user, before, limit, under)
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
    const row = await this.#file<FileRow>(FILE_COLUMNS, user, path)
    return row === undefined ? undefined : toMeta(row)
  }

  async inlineContent(user: string, path: string): Promise<Uint8Array | undefined> {
    return (await this.#file<{ content: Buffer | null }>('content', user, path))?.content ?? undefined
  }

  /** One file's row, found by its identity in files_pkey. */
  async #file<R extends pg.QueryResultRow>(columns: string, user: string, path: string): Promise<R | undefined> {
    const { start, restHash } = keyIdentity(fileKey(user, path))
    const { rows } = await this.#pool.query<R>(`SELECT ${columns} FROM files WHERE key_start = $1 AND key_rest_hash = $2`, [start, restHash])
    return rows[0]
  }

  fileKeys(range: KeyRange): AsyncIterable<string> {
    return fileKeys(this.#pool, range)
  }

  readView(): Promise<ReadView> {
    return PostgresReadView.open(this.#pool)
  }

  totals(): Promise<{ users: number; bytes: number }> {
    return this.#accounts.totals()
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

  forgetSessions(createdBefore: number): Promise<number> {
    return this.#sessions.forgetBefore(createdBefore)
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

  async upstreamCursors(names?: readonly string[]): Promise<UpstreamCursor[]> {
    const { rows } = names === undefined
      ? await this.#pool.query<UpstreamCursor>('SELECT upstream, homeserver, cursor FROM upstreams ORDER BY upstream')
      : await this.#pool.query<UpstreamCursor>('SELECT upstream, homeserver, cursor FROM upstreams WHERE upstream = ANY($1::text[]) ORDER BY upstream', [names])
    return rows
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
