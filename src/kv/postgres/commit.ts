import type postgres from 'postgres'
import type { HearthEvent } from '../../events/event.js'
import { fileKey, type CommitTx, type FileMeta, type FileRef, type UserRecord } from '../store.js'
import { COMMITS } from './watch.js'

interface FileRow {
  key: string
  size: number
  hash: string
  type: string
  mtime: number
  blob: string | null
}

interface StagedFile {
  user: string
  meta: FileMeta
  inline: Uint8Array | undefined
}

/**
 * One commit group's transaction, after it took the commit lock (the `head` row, FOR UPDATE).
 *
 * Reads are queries inside the transaction. The transaction runs at READ COMMITTED, where
 * each statement sees everything committed before it started; since every commit takes the
 * same row lock first and releases it only by committing, each read here sees every earlier
 * commit, and no other commit can land until this one ends. So nothing stronger than READ
 * COMMITTED is needed — and nothing stronger would work: under REPEATABLE READ the lock
 * would be granted on a row version the snapshot cannot see, and the transaction would fail.
 *
 * Writes are staged in memory, last one per file winning, and `write()` sends them as a few
 * multi-row statements, pipelined in one round trip.
 */
export class PostgresCommitTx implements CommitTx {
  readonly head: number
  readonly #sql: postgres.TransactionSql
  readonly #files = new Map<string, StagedFile | null>()
  readonly #usage = new Map<string, number>()
  readonly #events: HearthEvent[] = []
  readonly #referenced = new Set<string>()
  readonly #released = new Set<string>()

  constructor(sql: postgres.TransactionSql, head: number) {
    this.#sql = sql
    this.head = head
  }

  get appended(): number {
    return this.#events.length
  }

  async files(refs: readonly FileRef[]): Promise<(FileMeta | undefined)[]> {
    if (refs.length === 0) return []
    const keys = refs.map((r) => fileKey(r.user, r.path))
    const rows = await this.#sql<FileRow[]>`
      SELECT key, size, hash, type, mtime, blob FROM files WHERE key = ANY(${keys}::text[])`
    const found = new Map(rows.map((r) => [r.key, toMeta(r)]))
    return keys.map((k) => found.get(k))
  }

  async users(users: readonly string[]): Promise<(UserRecord | undefined)[]> {
    if (users.length === 0) return []
    const rows = await this.#sql<{ id: string; created_at: number; usage: number }[]>`
      SELECT id, created_at, usage FROM users WHERE id = ANY(${users as string[]}::text[])`
    const found = new Map(rows.map((r) => [r.id, { createdAt: r.created_at, usage: r.usage }]))
    return users.map((u) => found.get(u))
  }

  async filesUnder(user: string, dir: string, limit: number): Promise<string[]> {
    const base = fileKey(user, dir)
    // '0' follows '/' in byte order: every key under `dir` sorts before base-without-'/' + '0'
    const end = base.slice(0, -1) + '0'
    const rows = await this.#sql<{ key: string }[]>`
      SELECT key FROM files WHERE key >= ${base} AND key < ${end} ORDER BY key LIMIT ${limit}`
    return rows.map((r) => r.key.slice(user.length))
  }

  putFile(user: string, path: string, meta: FileMeta, inline: Uint8Array | undefined, old: FileMeta | undefined): void {
    this.#files.set(fileKey(user, path), { user, meta, inline })
    if (meta.blob !== undefined) this.#referenced.add(meta.blob)
    if (old?.blob !== undefined && old.blob !== meta.blob) this.#released.add(old.blob)
  }

  deleteFile(user: string, path: string, old: FileMeta): void {
    this.#files.set(fileKey(user, path), null)
    if (old.blob !== undefined) this.#released.add(old.blob)
  }

  setUsage(user: string, usage: number): void {
    this.#usage.set(user, usage)
  }

  append(events: readonly HearthEvent[]): void {
    for (const ev of events) {
      const expected = this.head + this.#events.length + 1
      // a gap or a repeat here would break the log's one promise: refuse the whole group
      if (ev.seq !== expected) throw new Error(`append: expected seq ${expected}, got ${ev.seq}`)
      this.#events.push(ev)
    }
  }

  /** Sends everything staged, raises the head and queues the notification (sent at COMMIT). */
  async write(): Promise<void> {
    const sql = this.#sql
    const puts = [...this.#files].filter((e): e is [string, StagedFile] => e[1] !== null)
    const dels = [...this.#files].filter(([, f]) => f === null).map(([k]) => k)
    // a blob put and replaced within this one group is released, not referenced
    const referenced = [...this.#referenced].filter((id) => !this.#released.has(id))
    const released = [...this.#released]
    const usage = [...this.#usage]
    const head = this.head + this.#events.length
    const q: postgres.PendingQuery<postgres.Row[]>[] = []
    if (dels.length > 0) q.push(sql`DELETE FROM files WHERE key = ANY(${dels}::text[])`)
    if (puts.length > 0) {
      q.push(sql`
        INSERT INTO files (key, user_id, size, hash, type, mtime, blob, content)
        SELECT k, u, s, h, t, m, b, decode(c, 'hex')
        FROM unnest(${puts.map(([k]) => k)}::text[], ${puts.map(([, f]) => f.user)}::text[],
                    ${puts.map(([, f]) => f.meta.size)}::int8[], ${puts.map(([, f]) => f.meta.hash)}::text[],
                    ${puts.map(([, f]) => f.meta.type)}::text[], ${puts.map(([, f]) => f.meta.mtime)}::int8[],
                    ${puts.map(([, f]) => f.meta.blob ?? null)}::text[], ${puts.map(([, f]) => content(f))}::text[])
             AS p(k, u, s, h, t, m, b, c)
        ON CONFLICT (key) DO UPDATE SET user_id = EXCLUDED.user_id, size = EXCLUDED.size,
          hash = EXCLUDED.hash, type = EXCLUDED.type, mtime = EXCLUDED.mtime,
          blob = EXCLUDED.blob, content = EXCLUDED.content`)
    }
    const claim =
      referenced.length > 0
        ? sql`UPDATE blobs SET referenced = true
              WHERE id = ANY(${referenced}::text[]) AND finished_at IS NOT NULL AND dead_at IS NULL`
        : undefined
    if (claim !== undefined) q.push(claim)
    if (released.length > 0) {
      q.push(sql`UPDATE blobs SET referenced = false, dead_at = coalesce(dead_at, now()) WHERE id = ANY(${released}::text[])`)
    }
    if (usage.length > 0) {
      q.push(sql`
        UPDATE users SET usage = v.usage
        FROM unnest(${usage.map(([u]) => u)}::text[], ${usage.map(([, n]) => n)}::int8[]) AS v(id, usage)
        WHERE users.id = v.id`)
    }
    if (this.#events.length > 0) {
      const evs = this.#events
      q.push(sql`
        INSERT INTO events (seq, user_id, event)
        SELECT s, u, e::json FROM unnest(${evs.map((e) => e.seq)}::int8[], ${evs.map((e) => e.user)}::text[],
                                         ${evs.map((e) => JSON.stringify(e))}::text[]) AS v(s, u, e)`)
      q.push(sql`UPDATE log_bounds SET value = ${head} WHERE name = 'head'`)
      // delivered at COMMIT, and in commit order, to every listening instance
      q.push(sql`SELECT pg_notify(${COMMITS}, ${String(head)})`)
    }
    // issued together (in this order), the statements are pipelined: one round trip
    await Promise.all(q)
    // the blob was swept, aborted or never finished: a file pointing at it would be empty
    if (claim !== undefined && (await claim).count !== referenced.length) throw new Error('a blob this commit references is not stored')
  }
}

/** Inline content as hex (NULL for blob files): arrays of bytea do not cross the driver. */
function content(f: StagedFile): string | null {
  if (f.meta.blob !== undefined) return null
  const bytes = f.inline ?? new Uint8Array()
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function toMeta(r: FileRow): FileMeta {
  const meta: FileMeta = { size: r.size, hash: r.hash, type: r.type, mtime: r.mtime }
  if (r.blob !== null) meta.blob = r.blob
  return meta
}

export type { FileRow }

/** How long commit groups held the commit lock, as seen from this process. */
export interface LockStats {
  groups: number
  lastMs: number
  maxMs: number
  totalMs: number
}
