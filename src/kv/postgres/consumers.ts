import type pg from 'pg'
import type { ConsumerChange, ConsumerRecord, CreateConsumerResult } from '../consumer-record.js'
import { transaction } from './connect.js'

/**
 * Durable consumers, one row each (migration 6). Changes take the row's lock (FOR UPDATE) and
 * write it back before COMMIT, so two instances never both claim the same delivery; creations
 * take the owner's user row's lock first, so the per-owner cap holds across instances.
 */
export class ConsumerTable {
  readonly #pool: pg.Pool

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async list(owner: string): Promise<ConsumerRecord[]> {
    const { rows } = await this.#pool.query<{ record: string }>('SELECT record FROM consumers WHERE owner = $1 ORDER BY id', [owner])
    return rows.map((r) => JSON.parse(r.record) as ConsumerRecord)
  }

  async get(owner: string, id: string): Promise<ConsumerRecord | undefined> {
    const { rows } = await this.#pool.query<{ record: string }>('SELECT record FROM consumers WHERE owner = $1 AND id = $2', [owner, id])
    return rows[0] === undefined ? undefined : (JSON.parse(rows[0].record) as ConsumerRecord)
  }

  create(record: ConsumerRecord, maxPerOwner: number): Promise<CreateConsumerResult> {
    return transaction(this.#pool, async (client) => {
      // the owner's creations one at a time: a user row exists for every owner (signed up)
      await client.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [record.owner])
      const { rows } = await client.query<{ n: string; mine: boolean }>(
        'SELECT count(*) AS n, bool_or(id = $2) AS mine FROM consumers WHERE owner = $1',
        [record.owner, record.id],
      )
      if (rows[0]!.mine === true) return 'exists'
      if (Number(rows[0]!.n) >= maxPerOwner) return 'full'
      await client.query('INSERT INTO consumers (owner, id, created_at, record) VALUES ($1, $2, $3, $4)', [
        record.owner, record.id, record.createdAt, JSON.stringify(record),
      ])
      return 'created'
    })
  }

  update<T>(owner: string, id: string, change: (record: ConsumerRecord) => ConsumerChange<T>): Promise<ConsumerChange<T> | undefined> {
    return transaction(this.#pool, async (client) => {
      const { rows } = await client.query<{ record: string }>('SELECT record FROM consumers WHERE owner = $1 AND id = $2 FOR UPDATE', [owner, id])
      if (rows[0] === undefined) return undefined
      const done = change(JSON.parse(rows[0].record) as ConsumerRecord)
      if (done.record !== undefined) {
        await client.query('UPDATE consumers SET record = $3 WHERE owner = $1 AND id = $2', [owner, id, JSON.stringify(done.record)])
      }
      return done
    })
  }

  async delete(owner: string, id: string): Promise<boolean> {
    const { rowCount } = await this.#pool.query('DELETE FROM consumers WHERE owner = $1 AND id = $2', [owner, id])
    return (rowCount ?? 0) > 0
  }
}
