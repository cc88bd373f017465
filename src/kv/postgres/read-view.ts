import type pg from 'pg'
import { splitFileKey, type FileEntry, type KeyRange, type ReadView } from '../store.js'
import { FILE_COLUMNS, toMeta, type FileRow } from './commit.js'
import { checkout, type Checkout } from './connect.js'

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

  async files(range: KeyRange, limit: number): Promise<FileEntry[]> {
    // only the bounds given, so the plan is an index range scan of the primary key
    const bounds: string[] = []
    const params: unknown[] = []
    for (const [op, value] of [['>', range.gt], ['>=', range.gte], ['<', range.lt], ['<=', range.lte]] as const) {
      if (value === undefined) continue
      params.push(value)
      bounds.push(`key ${op} $${params.length}`)
    }
    params.push(limit)
    const { rows } = await this.#c.client.query<FileRow>(
      `SELECT ${FILE_COLUMNS} FROM files ${bounds.length > 0 ? `WHERE ${bounds.join(' AND ')}` : ''} ORDER BY key LIMIT $${params.length}`,
      params,
    )
    return rows.map((r) => ({ ...splitFileKey(r.key), meta: toMeta(r) }))
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
