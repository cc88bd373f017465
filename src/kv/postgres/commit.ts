import type pg from 'pg'
import type { HearthEvent } from '../../events/event.js'
import { encodeStored } from '../../events/stored.js'
import { fileKey, pastPrefix, type CommitTx, type FileMeta, type FileRef, type UpstreamCursor, type UserRecord } from '../store.js'
import { COMMITS } from './watch.js'
import { FULL_START, keyIdentity, keyParts } from './key-parts.js'
import { Serial } from '../../serial.js'
import type { RowShape } from './field-rows.js'

interface FileRow {
  key: string
  size: number
  hash: string
  type: string
  mtime: number
  blob: string | null
  seq: number | null
}

/** The columns a FileRow reads. */
export const FILE_COLUMNS = 'key, size, hash, type, mtime, blob, seq'

/** FILE_COLUMNS read as text fields (selectRows), in their order. */
export const FILE_ROWS: RowShape<FileRow> = {
  columns: FILE_COLUMNS,
  row: (f) => ({ key: f[0]!, size: Number(f[1]), hash: f[2]!, type: f[3]!, mtime: Number(f[4]), blob: f[5], seq: f[6] === null ? null : Number(f[6]) }),
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
 * statements, each taking whole arrays (`unnest`), so a group of any size costs the same
 * handful of round trips.
 */
export class PostgresCommitTx implements CommitTx {
  readonly head: number
  readonly #tx: pg.PoolClient
  readonly #files = new Map<string, StagedFile | null>()
  readonly #usage = new Map<string, number>()
  readonly #events: HearthEvent[] = []
  readonly #referenced = new Set<string>()
  readonly #released = new Set<string>()
  readonly #cursors = new Map<string, UpstreamCursor>()

  readonly #order = new Serial()

  constructor(tx: pg.PoolClient, head: number) {
    this.#tx = tx
    this.head = head
  }

  /**
   * One statement at a time on the transaction's connection: callers may read concurrently
   * (the writer fetches files, users and folders at once), and pg wants its queries queued
   * by the caller.
   */
  #query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.#order.run(() => this.#tx.query<R>(text, values))
  }

  get appended(): number {
    return this.#events.length
  }

  async files(refs: readonly FileRef[]): Promise<(FileMeta | undefined)[]> {
    if (refs.length === 0) return []
    const keys = refs.map((r) => fileKey(r.user, r.path))
    const { rows } = await this.#query<FileRow>(
      `SELECT ${FILE_COLUMNS} FROM files
       JOIN unnest($1::bytea[], $2::bytea[]) AS p(s, h) ON key_start = p.s AND key_rest_hash = p.h`,
      identities(keys),
    )
    const found = new Map(rows.map((r) => [r.key, toMeta(r)]))
    return keys.map((k) => found.get(k))
  }

  async users(users: readonly string[]): Promise<(UserRecord | undefined)[]> {
    if (users.length === 0) return []
    const { rows } = await this.#query<{ id: string; created_at: number; usage: number }>(
      'SELECT id, created_at, usage FROM users WHERE id = ANY($1::text[])',
      [users],
    )
    const found = new Map(rows.map((r) => [r.id, { createdAt: r.created_at, usage: r.usage }]))
    return users.map((u) => found.get(u))
  }

  async countUnder(folders: readonly FileRef[], cap: number): Promise<number[]> {
    if (folders.length === 0) return []
    // '0' follows '/' in byte order: every key under `<key>/` sorts before `<key>0`. The two
    // have the same length, so either both fit in a start and the keys between them are those
    // whose start lies between theirs, or both have the same full start and a rest of their
    // own, and the keys between them are those of that start whose rest lies between.
    const lo = folders.map((f) => keyParts(fileKey(f.user, f.path) + '/'))
    const hi = folders.map((f) => keyParts(fileKey(f.user, f.path) + '0'))
    const { rows } = await this.#query<{ n: number }>(
      `SELECT (CASE WHEN octet_length(f.lo_rest) = 0
         THEN (SELECT count(*) FROM (SELECT 1 FROM files WHERE key_start >= f.lo AND key_start < f.hi LIMIT $5) s)
         ELSE (SELECT count(*) FROM (SELECT 1 FROM files WHERE ${FULL_START} AND sha256(key_start) = sha256(f.lo)
           AND key_start = f.lo AND key_rest >= f.lo_rest AND key_rest < f.hi_rest LIMIT $5) s)
         END)::int AS n
         FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[]) WITH ORDINALITY AS f(lo, hi, lo_rest, hi_rest, i) ORDER BY f.i`,
      [lo.map((k) => k.start), hi.map((k) => k.start), lo.map((k) => k.rest), hi.map((k) => k.rest), cap],
    )
    return rows.map((r) => r.n)
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

  async upstreamCursors(upstreams: readonly string[]): Promise<(UpstreamCursor | undefined)[]> {
    if (upstreams.length === 0) return []
    const { rows } = await this.#query<UpstreamCursor>(
      'SELECT upstream, homeserver, cursor FROM upstreams WHERE upstream = ANY($1::text[])',
      [upstreams],
    )
    const found = new Map(rows.map((r) => [r.upstream, r]))
    return upstreams.map((u) => found.get(u))
  }

  async upstreamCursorsUnder(prefixes: readonly string[]): Promise<UpstreamCursor[][]> {
    if (prefixes.length === 0) return []
    // names are COLLATE "C" (migration 7): a range of the primary key, in byte order
    const { rows } = await this.#query<UpstreamCursor & { i: number }>(
      `SELECT p.i::int AS i, u.upstream, u.homeserver, u.cursor
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS p(lo, hi, i)
       JOIN upstreams u ON u.upstream >= p.lo AND u.upstream < p.hi
       ORDER BY p.i, u.upstream`,
      [prefixes, prefixes.map(pastPrefix)],
    )
    const out = prefixes.map((): UpstreamCursor[] => [])
    for (const { i, ...cursor } of rows) out[i - 1]!.push(cursor)
    return out
  }

  setUpstreamCursor(cursor: UpstreamCursor): void {
    this.#cursors.set(cursor.upstream, { ...cursor })
  }

  /** Sends everything staged and raises the head; the notification is sent at COMMIT. */
  async write(): Promise<void> {
    const tx = this.#tx
    const puts = [...this.#files].filter((e): e is [string, StagedFile] => e[1] !== null)
    const dels = [...this.#files].filter(([, f]) => f === null).map(([k]) => k)
    // a blob put and replaced within this one group is released, not referenced
    const referenced = [...this.#referenced].filter((id) => !this.#released.has(id))
    const released = [...this.#released]
    if (dels.length > 0) {
      await tx.query('DELETE FROM files USING unnest($1::bytea[], $2::bytea[]) AS p(s, h) WHERE key_start = p.s AND key_rest_hash = p.h', identities(dels))
    }
    if (puts.length > 0) {
      await tx.query(
        `INSERT INTO files (key, user_id, size, hash, type, mtime, blob, content, seq)
         SELECT k, u, s, h, t, m, b, decode(c, 'hex'), q
         FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::text[], $8::text[], $9::int8[])
           AS p(k, u, s, h, t, m, b, c, q)
         ON CONFLICT (key_start, key_rest_hash) DO UPDATE SET user_id = EXCLUDED.user_id, size = EXCLUDED.size,
           hash = EXCLUDED.hash, type = EXCLUDED.type, mtime = EXCLUDED.mtime,
           blob = EXCLUDED.blob, content = EXCLUDED.content, seq = EXCLUDED.seq`,
        [
          puts.map(([k]) => k),
          puts.map(([, f]) => f.user),
          puts.map(([, f]) => f.meta.size),
          puts.map(([, f]) => f.meta.hash),
          puts.map(([, f]) => f.meta.type),
          puts.map(([, f]) => f.meta.mtime),
          puts.map(([, f]) => f.meta.blob ?? null),
          puts.map(([, f]) => content(f)),
          puts.map(([, f]) => f.meta.seq ?? null),
        ],
      )
    }
    if (referenced.length > 0) {
      const r = await tx.query(
        'UPDATE blobs SET referenced = true WHERE id = ANY($1::text[]) AND finished_at IS NOT NULL AND dead_at IS NULL',
        [referenced],
      )
      // the blob was swept, aborted or never finished: a file pointing at it would be empty
      if (r.rowCount !== referenced.length) throw new Error('a blob this commit references is not stored')
    }
    if (released.length > 0) {
      await tx.query('UPDATE blobs SET referenced = false, dead_at = coalesce(dead_at, now()) WHERE id = ANY($1::text[])', [released])
    }
    if (this.#usage.size > 0) {
      await tx.query(
        `UPDATE users SET usage = v.usage FROM unnest($1::text[], $2::int8[]) AS v(id, usage) WHERE users.id = v.id`,
        [[...this.#usage.keys()], [...this.#usage.values()]],
      )
    }
    if (this.#cursors.size > 0) {
      const cursors = [...this.#cursors.values()]
      await tx.query(
        `INSERT INTO upstreams (upstream, homeserver, cursor)
         SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
         ON CONFLICT (upstream) DO UPDATE SET homeserver = EXCLUDED.homeserver, cursor = EXCLUDED.cursor`,
        [cursors.map((c) => c.upstream), cursors.map((c) => c.homeserver), cursors.map((c) => c.cursor)],
      )
    }
    if (this.#events.length === 0) return
    const evs = this.#events
    const head = this.head + evs.length
    await tx.query(
      `INSERT INTO events (seq, user_id, path, stored) SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[])`,
      [evs.map((e) => e.seq), evs.map((e) => e.user), evs.map((e) => e.path), evs.map(encodeStored)],
    )
    // the notification is delivered at COMMIT, in commit order, to every listening instance
    await tx.query("WITH raised AS (UPDATE log_bounds SET value = $1 WHERE name = 'head') SELECT pg_notify($2, $3)", [
      head,
      COMMITS,
      String(head),
    ])
  }
}

/** Keys as the two arrays that name their rows in files_pkey: starts and rest hashes. */
function identities(keys: readonly string[]): [Buffer[], Buffer[]] {
  const parts = keys.map(keyIdentity)
  return [parts.map((p) => p.start), parts.map((p) => p.restHash)]
}

/** Inline content as hex (NULL for blob files), decoded in SQL: one text[] carries the whole group. */
function content(f: StagedFile): string | null {
  if (f.meta.blob !== undefined) return null
  const bytes = f.inline ?? new Uint8Array()
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function toMeta(r: FileRow): FileMeta {
  const meta: FileMeta = { size: r.size, hash: r.hash, type: r.type, mtime: r.mtime }
  if (r.seq !== null) meta.seq = r.seq
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
