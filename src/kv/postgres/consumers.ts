import type pg from 'pg'
import type { ConsumerChange, ConsumerRecord, CreateConsumerResult, Outstanding } from '../consumer-record.js'
import { CACHED_RECORDS, RecordCache, headChanged, headOf, outstandingChanges } from '../consumer-parts.js'
import { transaction } from './connect.js'

/** A consumer's outstanding events as one JSON array of `[seq, user, deliveries, holder, deadline]`, in seq order. */
const EVENTS = `(SELECT coalesce(json_agg(json_build_array(seq, user_id, deliveries, holder, deadline) ORDER BY seq), '[]')::text
  FROM consumer_events e WHERE e.owner = c.owner AND e.id = c.id)`

/**
 * Writes a change in one statement: the events it removed and those it added or changed, the
 * head when it changed ($3; null: unchanged), and one more version.
 */
const WRITE = `WITH gone AS (
  DELETE FROM consumer_events WHERE owner = $1 AND id = $2 AND seq = ANY($4::bigint[])
), put AS (
  INSERT INTO consumer_events (owner, id, seq, user_id, deliveries, holder, deadline)
  SELECT $1, $2, * FROM unnest($5::bigint[], $6::text[], $7::integer[], $8::text[], $9::bigint[])
  ON CONFLICT (owner, id, seq) DO UPDATE
  SET user_id = EXCLUDED.user_id, deliveries = EXCLUDED.deliveries, holder = EXCLUDED.holder, deadline = EXCLUDED.deadline
)
UPDATE consumers SET version = version + 1, record = coalesce($3, record) WHERE owner = $1 AND id = $2`

interface Row {
  record: string
  version: number
  events: string | null
}

/**
 * Durable consumers (migrations 6 and 7), in parts (consumer-parts.ts): a row per consumer
 * with its head and version, a row per outstanding event. A change locks the consumer's row
 * (FOR UPDATE), starts from the record this instance decoded last when the row's version says
 * no one changed it since (else reads the events, after the lock, so it sees every earlier
 * change), and writes what it changed before COMMIT: two instances never both claim the same
 * delivery. Creations take the owner's user row's lock first, so the per-owner cap holds
 * across instances.
 */
export class ConsumerTable {
  readonly #pool: pg.Pool
  readonly #cache = new RecordCache(CACHED_RECORDS)

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async list(owner: string): Promise<ConsumerRecord[]> {
    const { rows } = await this.#pool.query<Row>(`SELECT record, version, ${EVENTS} AS events FROM consumers c WHERE owner = $1 ORDER BY id`, [owner])
    return rows.map((r) => decode(r.record, r.events!))
  }

  /** One statement, so the head and the events are of one moment; the events only when the kept record is not current. */
  async get(owner: string, id: string): Promise<ConsumerRecord | undefined> {
    const kept = this.#cache.peek(owner, id)
    const { rows } = await this.#pool.query<Row>(
      `SELECT record, version, CASE WHEN version = $3 THEN NULL ELSE ${EVENTS} END AS events FROM consumers c WHERE owner = $1 AND id = $2`,
      [owner, id, kept?.version ?? -1],
    )
    const row = rows[0]
    if (row === undefined) return undefined
    if (row.events === null) return kept!.record
    const record = decode(row.record, row.events)
    this.#cache.set(owner, id, row.version, record)
    return record
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
        record.owner, record.id, record.createdAt, JSON.stringify(headOf(record)),
      ])
      if (record.outstanding.length > 0) await write(client, record, undefined)
      return 'created'
    })
  }

  async update<T>(owner: string, id: string, change: (record: ConsumerRecord) => ConsumerChange<T>): Promise<ConsumerChange<T> | undefined> {
    let stored: { version: number; record: ConsumerRecord } | undefined
    const done = await transaction(this.#pool, async (client) => {
      const { rows } = await client.query<Row>('SELECT record, version FROM consumers WHERE owner = $1 AND id = $2 FOR UPDATE', [owner, id])
      const row = rows[0]
      if (row === undefined) return undefined
      let record = this.#cache.get(owner, id, row.version)
      if (record === undefined) {
        const events = await client.query<{ events: string }>(`SELECT ${EVENTS} AS events FROM (SELECT $1::text AS owner, $2::text AS id) c`, [owner, id])
        record = decode(row.record, events.rows[0]!.events)
      }
      const done = change(record)
      if (done.record !== undefined) stored = { version: (await write(client, done.record, record)) ? row.version + 1 : row.version, record: done.record }
      return done
    })
    // known only once COMMIT went through; a transaction that failed leaves the kept record, which the version check then refuses
    if (stored !== undefined) this.#cache.set(owner, id, stored.version, stored.record)
    return done
  }

  async delete(owner: string, id: string): Promise<boolean> {
    this.#cache.drop(owner, id)
    const { rowCount } = await this.#pool.query('DELETE FROM consumers WHERE owner = $1 AND id = $2', [owner, id])
    return (rowCount ?? 0) > 0
  }
}

/** Stores `record` over `before` (what the rows hold; none: no events), writing only what differs; false when nothing does. */
async function write(client: pg.PoolClient, record: ConsumerRecord, before: ConsumerRecord | undefined): Promise<boolean> {
  const { put, del } = outstandingChanges(before?.outstanding ?? [], record.outstanding)
  const head = before !== undefined && !headChanged(before, record) ? null : JSON.stringify(headOf(record))
  if (head === null && put.length === 0 && del.length === 0) return false
  await client.query(WRITE, [
    record.owner, record.id, head, del,
    put.map((e) => e.seq), put.map((e) => e.user), put.map((e) => e.deliveries), put.map((e) => e.holder ?? null), put.map((e) => e.deadline ?? null),
  ])
  return true
}

function decode(head: string, events: string): ConsumerRecord {
  const outstanding = (JSON.parse(events) as [number, string, number, string | null, number | null][]).map(([seq, user, deliveries, holder, deadline]) => {
    const e: Outstanding = { seq, user, deliveries }
    if (holder !== null) e.holder = holder
    if (deadline !== null) e.deadline = deadline
    return e
  })
  return { ...(JSON.parse(head) as ConsumerRecord), outstanding }
}
