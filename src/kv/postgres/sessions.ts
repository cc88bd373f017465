import { randomUUID } from 'node:crypto'
import type { SessionRecord } from '../store.js'
import type pg from 'pg'
import type { StoreLog } from './log-types.js'
import type { Notifications } from './notifications.js'

/** The channel a session deletion notifies: `<origin>:<secret>`. */
export const SESSION_DELETIONS = 'hearth_sessions'

/**
 * Sessions, and word of their deletion to every process. A deletion made here is told to
 * local listeners at once; other processes hear it through NOTIFY, and this process skips
 * its own notifications (the origin in the payload), so each deletion is heard once.
 * A notification sent while this process's LISTEN connection was down is lost: a stream
 * kept open by a session deleted meanwhile is closed only by a later check of the session.
 */
export class SessionTable {
  readonly #pool: pg.Pool
  readonly #log: StoreLog
  readonly #origin = randomUUID()
  readonly #listeners = new Set<(secret: string) => void>()

  /** Registers on `notifications`, which the caller then starts. */
  constructor(pool: pg.Pool, notifications: Notifications, log: StoreLog) {
    this.#pool = pool
    this.#log = log
    notifications.on(SESSION_DELETIONS, (payload) => {
      const colon = payload.indexOf(':')
      if (payload.slice(0, colon) !== this.#origin) this.#emit(payload.slice(colon + 1))
    })
    notifications.onReconnect(() => this.#log.warn({}, 'sign-outs on other instances while the LISTEN connection was down were missed'))
  }

  stop(): void {
    this.#listeners.clear()
  }

  async put(secret: string, s: SessionRecord): Promise<void> {
    await this.#pool.query(
      `INSERT INTO sessions (secret, user_id, capabilities, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (secret) DO UPDATE SET user_id = EXCLUDED.user_id,
         capabilities = EXCLUDED.capabilities, created_at = EXCLUDED.created_at`,
      [secret, s.user, s.capabilities, s.createdAt],
    )
  }

  async get(secret: string): Promise<SessionRecord | undefined> {
    const { rows } = await this.#pool.query<{ user_id: string; capabilities: string; created_at: number }>(
      'SELECT user_id, capabilities, created_at FROM sessions WHERE secret = $1',
      [secret],
    )
    const row = rows[0]
    return row === undefined ? undefined : { user: row.user_id, capabilities: row.capabilities, createdAt: row.created_at }
  }

  /** Deletes and notifies in one statement, so a deletion is never made without its word. */
  async delete(secret: string): Promise<void> {
    const { rowCount } = await this.#pool.query(
      `WITH gone AS (DELETE FROM sessions WHERE secret = $1 RETURNING secret)
       SELECT pg_notify($2, $3) FROM gone`,
      [secret, SESSION_DELETIONS, this.#origin + ':' + secret],
    )
    if (rowCount !== null && rowCount > 0) this.#emit(secret)
  }

  /** Deletes and notifies in one statement, as `delete` does, for every session created before. */
  async forgetBefore(createdBefore: number): Promise<number> {
    const { rows } = await this.#pool.query<{ secret: string }>(
      `WITH gone AS (DELETE FROM sessions WHERE created_at < $1 RETURNING secret)
       SELECT secret, pg_notify($2, $3 || ':' || secret) FROM gone`,
      [createdBefore, SESSION_DELETIONS, this.#origin],
    )
    for (const { secret } of rows) this.#emit(secret)
    return rows.length
  }

  onDeleted(listener: (secret: string) => void): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  #emit(secret: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(secret)
      } catch (err) {
        this.#log.error({ err }, 'a session deletion listener threw')
      }
    }
  }
}
