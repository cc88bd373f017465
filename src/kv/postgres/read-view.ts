import type pg from 'pg'
import { splitFileKey, type FileEntry, type KeyRange, type ReadView } from '../store.js'
import { FILE_ROWS, toMeta } from './commit.js'
import { checkout, type Checkout } from './connect.js'
import { KeyScan } from './file-keys.js'

/**
 * `Store.readView` on PostgreSQL: one connection in a read-only REPEATABLE READ transaction,
 * whose snapshot is taken by its first statement (the bounds) and serves every read after it.
 * Closing ends the transaction and gives the connection back.
 */
export class PostgresReadView implements ReadView {
  readonly head: number
  readonly floor: number
  readonly #c: Checkout
  #closed = false

  private constructor(c: Checkout, head: number, floor: number) {
    this.#c = c
    this.head = head
    this.floor = floor
  }

  static async open(pool: pg.Pool): Promise<PostgresReadView> {
    const c = await checkout(pool)
    try {
      await c.client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const { rows } = await c.client.query<{ name: string; value: number }>('SELECT name, value FROM log_bounds')
      const bound = (name: string) => rows.find((r) => r.name === name)!.value
      return new PostgresReadView(c, bound('head'), bound('floor'))
    } catch (err) {
      await c.client.query('ROLLBACK').catch(() => {})
      c.done()
      c.client.release(c.broken() ?? (err as Error))
      throw err
    }
  }

  /** Fewer than `limit` only at the end of the range (a scan's page may stop short of it). */
  async files(range: KeyRange, limit: number): Promise<FileEntry[]> {
    const scan = new KeyScan(range)
    const out: FileEntry[] = []
    while (out.length < limit && !scan.done) {
      for (const r of await scan.page(this.#c.client, limit - out.length, FILE_ROWS)) out.push({ ...splitFileKey(r.key), meta: toMeta(r) })
    }
    return out
  }

  async users(after: string | undefined, limit: number): Promise<string[]> {
    const { rows } = await this.#c.client.query<{ id: string }>(
      'SELECT id FROM users WHERE $1::text IS NULL OR id > $1 ORDER BY id COLLATE "C" LIMIT $2',
      [after ?? null, limit],
    )
    return rows.map((r) => r.id)
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    try {
      await this.#c.client.query('COMMIT')
    } finally {
      this.#c.done()
      this.#c.client.release(this.#c.broken())
    }
  }
}
