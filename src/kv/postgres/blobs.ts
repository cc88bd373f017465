import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import type { BlobStore, BlobUpload } from '../store.js'
import type pg from 'pg'

/** Bytes per chunk row: big enough that a 100 MiB body is 400 rows, small enough to hold. */
export const CHUNK_BYTES = 256 * 1024
/** Chunks fetched per query while reading: a reader holds about 1 MiB at a time. */
const PAGE_CHUNKS = 4
/**
 * A released blob (replaced, deleted, or given up) is kept this long after its release and
 * after its last read, so a stream already reading it, on any instance, still gets every
 * byte. Readers renew their lease every minute while they read (LEASE_MS); only a reader
 * that stops pulling for longer than this can lose the blob, and its stream then fails
 * rather than ending short.
 */
export const DEAD_GRACE = '15 minutes'
/**
 * An upload not referenced by any commit and untouched this long is abandoned: its process
 * died or gave up before committing. An upload in progress is touched with every chunk it
 * writes, and a finished one is committed within seconds, so neither is near this age; a
 * commit that does come later finds the blob gone and is refused whole (commit.ts).
 */
export const ORPHAN_GRACE = '1 hour'
const LEASE_MS = 60_000
const SWEEP_BATCH = 100

/**
 * File bodies too large to live inline, as rows of CHUNK_BYTES in `blob_chunks`, so any
 * instance serves any file. Memory stays bounded both ways: an upload holds one chunk,
 * a reader one page of chunks. Durability is PostgreSQL's: each chunk is its own committed
 * INSERT (synchronous_commit, on by default, makes each one durable before it returns).
 */
export class PostgresBlobStore implements BlobStore {
  readonly #pool: pg.Pool

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async create(): Promise<BlobUpload> {
    const id = randomBytes(16).toString('hex')
    await this.#pool.query('INSERT INTO blobs (id) VALUES ($1)', [id])
    return new PostgresUpload(this.#pool, id)
  }

  async openRead(id: string): Promise<Readable | undefined> {
    // taking the lease and checking the blob is still live are one statement
    const { rows } = await this.#pool.query<{ size: number; chunks: number }>(
      `UPDATE blobs SET read_at = now()
       WHERE id = $1 AND finished_at IS NOT NULL AND dead_at IS NULL
       RETURNING size, chunks`,
      [id],
    )
    const blob = rows[0]
    if (blob === undefined) return undefined
    return Readable.from(readChunks(this.#pool, id, blob.size, blob.chunks), { objectMode: false, highWaterMark: CHUNK_BYTES })
  }

  /** Marks the blob dead; the sweep deletes it after DEAD_GRACE. A referenced blob is kept. */
  async remove(id: string): Promise<void> {
    await this.#pool.query('UPDATE blobs SET dead_at = coalesce(dead_at, now()) WHERE id = $1 AND NOT referenced', [id])
  }

  /**
   * Deletes blobs dead for longer than DEAD_GRACE (and unread as long), and uploads that no
   * commit references and nothing has touched for ORPHAN_GRACE. Times are the database's
   * clock, one for every instance. Resolves with how many blobs it deleted.
   */
  async sweep(): Promise<number> {
    let swept = 0
    for (;;) {
      const gone = await this.#pool.query(
        `DELETE FROM blobs WHERE id IN (
           SELECT id FROM blobs
           WHERE (dead_at < now() - $1::interval AND coalesce(read_at, dead_at) < now() - $1::interval)
              OR (NOT referenced AND dead_at IS NULL AND touched_at < now() - $2::interval)
           LIMIT $3)`,
        [DEAD_GRACE, ORPHAN_GRACE, SWEEP_BATCH],
      )
      const count = gone.rowCount ?? 0
      swept += count
      if (count < SWEEP_BATCH) return swept
    }
  }
}

class PostgresUpload implements BlobUpload {
  readonly id: string
  readonly #pool: pg.Pool
  #buf = Buffer.allocUnsafe(CHUNK_BYTES)
  #used = 0
  #chunks = 0
  #size = 0

  constructor(pool: pg.Pool, id: string) {
    this.#pool = pool
    this.id = id
  }

  async write(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.length; ) {
      const take = Math.min(CHUNK_BYTES - this.#used, chunk.length - at)
      this.#buf.set(chunk.subarray(at, at + take), this.#used)
      this.#used += take
      at += take
      if (this.#used === CHUNK_BYTES) await this.#flush()
    }
    this.#size += chunk.length
  }

  async finish(): Promise<void> {
    await this.#flush()
    const r = await this.#pool.query(
      `UPDATE blobs SET finished_at = now(), touched_at = now(), size = $2, chunks = $3
       WHERE id = $1 AND finished_at IS NULL AND dead_at IS NULL`,
      [this.id, this.#size, this.#chunks],
    )
    if (r.rowCount !== 1) throw new Error(`blob ${this.id} was removed before it was finished`)
  }

  async abort(): Promise<void> {
    await this.#pool.query('DELETE FROM blobs WHERE id = $1 AND NOT referenced', [this.id])
  }

  /** Stores the buffered chunk, touching the blob so no sweep takes it for abandoned. */
  async #flush(): Promise<void> {
    if (this.#used === 0) return
    const data = this.#buf.subarray(0, this.#used)
    this.#buf = Buffer.allocUnsafe(CHUNK_BYTES)
    this.#used = 0
    const r = await this.#pool.query(
      `WITH touched AS (
         UPDATE blobs SET touched_at = now() WHERE id = $1 AND finished_at IS NULL AND dead_at IS NULL RETURNING id)
       INSERT INTO blob_chunks (blob_id, n, data) SELECT id, $2, $3 FROM touched`,
      [this.id, this.#chunks, data],
    )
    if (r.rowCount !== 1) throw new Error(`blob ${this.id} was removed while it was being written`)
    this.#chunks++
  }
}

/** Yields a blob's bytes a page at a time, renewing the read lease as it goes. */
async function* readChunks(pool: pg.Pool, id: string, size: number, chunks: number): AsyncGenerator<Buffer> {
  let leased = Date.now()
  let sent = 0
  for (let n = 0; n < chunks; n += PAGE_CHUNKS) {
    if (Date.now() - leased > LEASE_MS) {
      await pool.query('UPDATE blobs SET read_at = now() WHERE id = $1', [id])
      leased = Date.now()
    }
    const { rows } = await pool.query<{ data: Buffer }>(
      'SELECT data FROM blob_chunks WHERE blob_id = $1 AND n >= $2 AND n < $3 ORDER BY n',
      [id, n, n + PAGE_CHUNKS],
    )
    if (rows.length !== Math.min(PAGE_CHUNKS, chunks - n)) throw new Error(`blob ${id} was deleted while being read`)
    for (const row of rows) {
      sent += row.data.length
      yield row.data
    }
  }
  if (sent !== size) throw new Error(`blob ${id} holds ${sent} bytes, expected ${size}`)
}
