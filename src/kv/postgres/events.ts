import type { HearthEvent } from '../../events/event.js'
import type { Sql } from './connect.js'
import { LOCKS } from './locks.js'

type EventRows = { event: HearthEvent }[]

/**
 * The event log's reads and its retention. Events are written only by commit groups
 * (commit.ts); everything here reads committed rows, so no reader sees seq N+1 before N:
 * both landed in commits that happened in seq order.
 */
export class EventTable {
  readonly #sql: Sql

  constructor(sql: Sql) {
    this.#sql = sql
  }

  async head(): Promise<number> {
    return this.#bound('head')
  }

  async floor(): Promise<number> {
    return this.#bound('floor')
  }

  async #bound(name: 'head' | 'floor'): Promise<number> {
    const [row] = await this.#sql<{ value: number }[]>`SELECT value FROM log_bounds WHERE name = ${name}`
    return row!.value
  }

  async read(after: number, upTo: number, limit: number): Promise<HearthEvent[]> {
    const rows = await this.#sql<EventRows>`
      SELECT event FROM events WHERE seq > ${after} AND seq <= ${upTo} ORDER BY seq LIMIT ${limit}`
    return rows.map((r) => r.event)
  }

  async readReverse(before: number, limit: number): Promise<HearthEvent[]> {
    const rows = await this.#sql<EventRows>`
      SELECT event FROM events WHERE seq < ${before} ORDER BY seq DESC LIMIT ${limit}`
    return rows.map((r) => r.event)
  }

  async readUser(user: string, after: number, upTo: number, limit: number): Promise<HearthEvent[]> {
    const rows = await this.#sql<EventRows>`
      SELECT event FROM events WHERE user_id = ${user} AND seq > ${after} AND seq <= ${upTo}
      ORDER BY seq LIMIT ${limit}`
    return rows.map((r) => r.event)
  }

  async readUserReverse(user: string, before: number, limit: number): Promise<HearthEvent[]> {
    const rows = await this.#sql<EventRows>`
      SELECT event FROM events WHERE user_id = ${user} AND seq < ${before} ORDER BY seq DESC LIMIT ${limit}`
    return rows.map((r) => r.event)
  }

  /** Monotonic: of two instances raising it at once, the higher floor stays. */
  async raiseFloor(floor: number): Promise<number> {
    const [row] = await this.#sql<{ value: number }[]>`
      UPDATE log_bounds SET value = GREATEST(value, ${floor}) WHERE name = 'floor' RETURNING value`
    return row!.value
  }

  /**
   * One pruner at a time across every process: whoever holds the advisory lock prunes, the
   * others get 0 and try again on their next round. The lock ends with the transaction.
   */
  async pruneBelowFloor(limit: number): Promise<number> {
    return this.#sql.begin(async (tx) => {
      const [got] = await tx<{ locked: boolean }[]>`
        SELECT pg_try_advisory_xact_lock(${LOCKS.class}, ${LOCKS.prune}) AS locked`
      if (!got!.locked) return 0
      const gone = await tx`
        DELETE FROM events WHERE seq IN (
          SELECT seq FROM events
          WHERE seq < (SELECT value FROM log_bounds WHERE name = 'floor')
          ORDER BY seq LIMIT ${limit})`
      return gone.count
    })
  }
}
