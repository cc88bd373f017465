import type pg from 'pg'
import type { HearthEvent } from '../../events/event.js'
import { decodeStored, encodeStored } from '../../events/stored.js'
import type { LogRead } from '../store.js'
import { transaction } from './connect.js'
import { LOCKS } from './locks.js'

/** An event as stored.ts reads it, in either layout (rows not yet rewritten hold JSON). */
const STORED = 'COALESCE(stored, event::text) AS stored'
/** The path filter of one user's index, on rows of either layout. */
const PATH_UNDER = (param: string) => `starts_with(COALESCE(path, event->>'path'), ${param})`

/**
 * The event log's reads and its retention. Events are written only by commit groups
 * (commit.ts); everything here reads committed rows, so no reader sees seq N+1 before N:
 * both landed in commits that happened in seq order.
 */
export class EventTable {
  readonly #pool: pg.Pool

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  head(): Promise<number> {
    return this.#bound('head')
  }

  floor(): Promise<number> {
    return this.#bound('floor')
  }

  async #bound(name: 'head' | 'floor'): Promise<number> {
    const { rows } = await this.#pool.query<{ value: number }>('SELECT value FROM log_bounds WHERE name = $1', [name])
    return rows[0]!.value
  }

  /**
   * One statement, so one snapshot: the floor it answers was raised before any event it
   * misses was deleted (pruning raises the floor first, in a commit of its own).
   */
  read(after: number, upTo: number, limit: number): Promise<LogRead> {
    return this.#page('seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3', [after, upTo, limit])
  }

  readReverse(before: number, limit: number): Promise<HearthEvent[]> {
    return this.#events(`SELECT ${STORED} FROM events WHERE seq < $1 ORDER BY seq DESC LIMIT $2`, [before, limit])
  }

  readUser(user: string, after: number, upTo: number, limit: number, under?: string): Promise<LogRead> {
    return under === undefined
      ? this.#page('user_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4', [user, after, upTo, limit])
      : this.#page(`user_id = $1 AND seq > $2 AND seq <= $3 AND ${PATH_UNDER('$5')} ORDER BY seq LIMIT $4`, [user, after, upTo, limit, under])
  }

  readUserReverse(user: string, before: number, limit: number, under?: string): Promise<HearthEvent[]> {
    return under === undefined
      ? this.#events(`SELECT ${STORED} FROM events WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, [user, before, limit])
      : this.#events(
        `SELECT ${STORED} FROM events WHERE user_id = $1 AND seq < $2 AND ${PATH_UNDER('$4')} ORDER BY seq DESC LIMIT $3`,
        [user, before, limit, under],
      )
  }

  async #page(where: string, params: unknown[]): Promise<LogRead> {
    const { rows } = await this.#pool.query<{ floor: string; stored: string | null }>(
      `SELECT f.value AS floor, e.stored FROM (SELECT value FROM log_bounds WHERE name = 'floor') f
       LEFT JOIN LATERAL (SELECT ${STORED} FROM events WHERE ${where}) e ON true`,
      params,
    )
    const events: HearthEvent[] = []
    for (const r of rows) if (r.stored !== null) events.push(decodeStored(r.stored))
    return { events, floor: Number(rows[0]!.floor) }
  }

  async #events(text: string, params: unknown[]): Promise<HearthEvent[]> {
    const { rows } = await this.#pool.query<{ stored: string }>(text, params)
    return rows.map((r) => decodeStored(r.stored))
  }

  /**
   * Rewrites rows stored as JSON (before migration 4) in the current layout, a batch per
   * statement, in seq order. Rows of both layouts read alike, so a rewrite cut short loses
   * nothing, and instances that run it at once write the same values. Resolves with the count.
   */
  async rewriteOld(batch = 5000): Promise<number> {
    let done = 0
    for (let after = 0; ;) {
      const { rows } = await this.#pool.query<{ seq: string; json: string }>(
        'SELECT seq, event::text AS json FROM events WHERE seq > $1 AND stored IS NULL ORDER BY seq LIMIT $2',
        [after, batch],
      )
      if (rows.length === 0) return done
      const events = rows.map((r) => decodeStored(r.json))
      await this.#pool.query(
        `UPDATE events SET stored = v.stored, path = v.path, event = NULL
         FROM unnest($1::int8[], $2::text[], $3::text[]) AS v(seq, stored, path) WHERE events.seq = v.seq AND events.stored IS NULL`,
        [events.map((e) => e.seq), events.map(encodeStored), events.map((e) => e.path)],
      )
      done += rows.length
      after = Number(rows[rows.length - 1]!.seq)
    }
  }

  /** Monotonic: of two instances raising it at once, the higher floor stays. */
  async raiseFloor(floor: number): Promise<number> {
    const { rows } = await this.#pool.query<{ value: number }>(
      "UPDATE log_bounds SET value = GREATEST(value, $1) WHERE name = 'floor' RETURNING value",
      [floor],
    )
    return rows[0]!.value
  }

  /**
   * One pruner at a time across every process: whoever holds the advisory lock prunes, the
   * others get 0 and try again on their next round. The lock ends with the transaction.
   */
  pruneBelowFloor(limit: number): Promise<number> {
    return transaction(this.#pool, async (tx) => {
      const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', [LOCKS.class, LOCKS.prune])
      if (!rows[0]!.locked) return 0
      const gone = await tx.query(
        `DELETE FROM events WHERE seq IN (
           SELECT seq FROM events WHERE seq < (SELECT value FROM log_bounds WHERE name = 'floor')
           ORDER BY seq LIMIT $1)`,
        [limit],
      )
      return gone.rowCount ?? 0
    })
  }
}
