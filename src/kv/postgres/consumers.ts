import type pg from 'pg'
import type { ConsumerChange, ConsumerRecord, CreateConsumerResult } from '../consumer-record.js'
import { CACHED_RECORDS, RecordCache, folds, headOf, journalEntry, replayChanges, snapshotText } from '../consumer-parts.js'
import { transaction } from './connect.js'

/**
 * The parts of a consumer's record (`c`) past the version `held` (an SQL expression; -1: the
 * whole record): its snapshot, unless `held` is at or past the version it was written at; the
 * changes after both, in order, as a JSON array of texts; neither when `held` is the version.
 */
const parts = (held: string) => `CASE WHEN ${held} >= c.folded THEN NULL ELSE c.snapshot END AS snapshot,
  CASE WHEN ${held} = c.version THEN NULL ELSE (SELECT coalesce(json_agg(j.changes ORDER BY j.version), '[]')::text
    FROM consumer_journal j WHERE j.owner = c.owner AND j.id = c.id AND j.version > greatest(${held}, c.folded)) END AS journal`

interface Parts {
  record: string
  version: string
  incarnation: string
  snapshot: string | null
  journal: string | null
}

/** A change: one more journal row ($5; null: none, the head alone changed), the head when it changed ($4; null: unchanged). */
const JOURNAL = `WITH j AS (
  INSERT INTO consumer_journal (owner, id, version, changes) SELECT $1, $2, $3, $5::text WHERE $5::text IS NOT NULL
)
UPDATE consumers SET version = $3, record = coalesce($4::text, record), journal_bytes = journal_bytes + coalesce(length($5::text), 0)
WHERE owner = $1 AND id = $2`

/** A fold: the head and a new snapshot at version $3, the journal deleted. */
const FOLD = `WITH gone AS (
  DELETE FROM consumer_journal WHERE owner = $1 AND id = $2
)
UPDATE consumers SET version = $3, folded = $3, record = $4, snapshot = $5, journal_bytes = 0
WHERE owner = $1 AND id = $2`

/**
 * Durable consumers (migrations 6, 8 and 9), in parts (consumer-parts.ts): a row per consumer
 * with its head, its outstanding events as a snapshot written at version `folded`, and its
 * version; in `consumer_journal` a row per change since the snapshot. A change locks the
 * consumer's row (FOR UPDATE) and starts from the record this instance decoded last: as it is
 * when the version says no one changed it since; else brought up to date with the changes
 * after its version, read after the lock so that it sees every earlier change; else read
 * whole. Before COMMIT it inserts one journal row however many events it touched, or, every
 * JOURNAL_MOST changes, folds the journal into a new snapshot: two instances never both claim
 * the same delivery. Creations take the owner's user row's lock first, so the per-owner cap
 * holds across instances.
 */
export class ConsumerTable {
  readonly #pool: pg.Pool
  readonly #cache = new RecordCache<Kept>(CACHED_RECORDS)

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async list(owner: string): Promise<ConsumerRecord[]> {
    const { rows } = await this.#pool.query<Parts>(`SELECT record, version, incarnation, ${parts('-1')} FROM consumers c WHERE owner = $1 ORDER BY id`, [owner])
    return rows.map((r) => decode(r, undefined))
  }

  /** One statement, so the head and the changes are of one moment: the changes after the kept record's version, when it is not current. */
  async get(owner: string, id: string): Promise<ConsumerRecord | undefined> {
    let kept = this.#cache.peek(owner, id)
    for (;;) {
      const { rows } = await this.#pool.query<Parts>(`SELECT record, version, incarnation, ${parts('$3')} FROM consumers c WHERE owner = $1 AND id = $2`, [owner, id, kept?.version ?? -1])
      const row = rows[0]
      if (row === undefined) return undefined
      // a consumer deleted and made again under the same id: the kept record is of the one before
      if (kept !== undefined && !sameConsumer(kept, row)) {
        kept = undefined
        continue
      }
      if (row.journal === null) return kept!.record.record
      const record = decode(row, kept?.record.record)
      this.#cache.set(owner, id, Number(row.version), { record, incarnation: row.incarnation })
      return record
    }
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
      await client.query('INSERT INTO consumers (owner, id, created_at, record, snapshot) VALUES ($1, $2, $3, $4, $5)', [
        record.owner, record.id, record.createdAt, JSON.stringify(headOf(record)), snapshotText(record),
      ])
      return 'created'
    })
  }

  async update<T>(owner: string, id: string, change: (record: ConsumerRecord) => ConsumerChange<T>): Promise<ConsumerChange<T> | undefined> {
    let stored: { version: number; record: Kept } | undefined
    const done = await transaction(this.#pool, async (client) => {
      const { rows } = await client.query<{ version: string; incarnation: string; folded: string; journal_bytes: string }>(
        'SELECT version, incarnation, folded, journal_bytes FROM consumers WHERE owner = $1 AND id = $2 FOR UPDATE', [owner, id],
      )
      const row = rows[0]
      if (row === undefined) return undefined
      const version = Number(row.version)
      const peeked = this.#cache.peek(owner, id)
      const kept = peeked !== undefined && sameConsumer(peeked, row) ? peeked : undefined
      let record = kept?.version === version ? kept.record.record : undefined
      if (record === undefined) {
        // a kept record from before the snapshot is no use: the changes it would need are gone
        const held = kept !== undefined && kept.version >= Number(row.folded) ? kept.version : -1
        const read = await client.query<Parts>(`SELECT record, version, incarnation, ${parts('$3')} FROM consumers c WHERE owner = $1 AND id = $2`, [owner, id, held])
        record = decode(read.rows[0]!, held === -1 ? undefined : kept!.record.record)
      }
      const done = change(record)
      if (done.record !== undefined) {
        const fold = folds(version - Number(row.folded), Number(row.journal_bytes))
        const wrote = await write(client, done.record, record, version + 1, fold)
        stored = { version: wrote ? version + 1 : version, record: { record: done.record, incarnation: row.incarnation } }
      }
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

/** A record this instance decoded, and the life of the consumer it is of (a consumer deleted and made again under its id has another). */
interface Kept {
  record: ConsumerRecord
  incarnation: string
}

/** Whether a kept record is of the consumer in this row, at a version up to the row's: not of one deleted since and made again under the same id. */
function sameConsumer(kept: { version: number; record: Kept }, row: { version: string; incarnation: string }): boolean {
  return kept.record.incarnation === row.incarnation && kept.version <= Number(row.version)
}

/** Stores `record` over `before` as `version`: a journal row of what differs, or a fold; false when nothing differs. */
async function write(client: pg.PoolClient, record: ConsumerRecord, before: ConsumerRecord, version: number, fold: boolean): Promise<boolean> {
  const { head, text } = journalEntry(before, record)
  if (head === undefined && text === undefined) return false
  if (fold) await client.query(FOLD, [record.owner, record.id, version, JSON.stringify(headOf(record)), snapshotText(record)])
  else await client.query(JOURNAL, [record.owner, record.id, version, head ?? null, text ?? null])
  return true
}

/** A record from its row's parts: from its snapshot, or from `base` (the record at a version since the snapshot) when the parts hold none. */
function decode(row: Parts, base: ConsumerRecord | undefined): ConsumerRecord {
  const head = JSON.parse(row.record) as ConsumerRecord
  const journal = JSON.parse(row.journal ?? '[]') as string[]
  if (row.snapshot !== null) return replayChanges({ ...head, outstanding: [] }, [row.snapshot, ...journal])
  return replayChanges({ ...head, cursor: base!.cursor, outstanding: base!.outstanding }, journal)
}
