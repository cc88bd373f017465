import { randomUUID } from 'node:crypto'
import type { SessionRecord } from '../store.js'
import type { Sql } from './connect.js'
import type { StoreLog } from './log-types.js'

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
  readonly #sql: Sql
  readonly #log: StoreLog
  readonly #origin = randomUUID()
  readonly #listeners = new Set<(secret: string) => void>()
  #unlisten: (() => Promise<void>) | undefined

  constructor(sql: Sql, log: StoreLog) {
    this.#sql = sql
    this.#log = log
  }

  /** Resolves once LISTEN is in place: deletions from then on are heard. */
  async start(): Promise<void> {
    let listening = false
    const meta = await this.#sql.listen(
      SESSION_DELETIONS,
      (payload) => {
        const colon = payload.indexOf(':')
        if (payload.slice(0, colon) !== this.#origin) this.#emit(payload.slice(colon + 1))
      },
      () => {
        if (!listening) return void (listening = true)
        this.#log.warn({ channel: SESSION_DELETIONS }, 'listening for sign-outs again after a reconnect; any sent meanwhile were missed')
      },
    )
    this.#unlisten = meta.unlisten
  }

  async stop(): Promise<void> {
    this.#listeners.clear()
    await this.#unlisten?.().catch(() => {})
  }

  async put(secret: string, s: SessionRecord): Promise<void> {
    await this.#sql`
      INSERT INTO sessions (secret, user_id, capabilities, created_at)
      VALUES (${secret}, ${s.user}, ${s.capabilities}, ${s.createdAt})
      ON CONFLICT (secret) DO UPDATE SET user_id = EXCLUDED.user_id,
        capabilities = EXCLUDED.capabilities, created_at = EXCLUDED.created_at`
  }

  async get(secret: string): Promise<SessionRecord | undefined> {
    const [row] = await this.#sql<{ user_id: string; capabilities: string; created_at: number }[]>`
      SELECT user_id, capabilities, created_at FROM sessions WHERE secret = ${secret}`
    return row === undefined ? undefined : { user: row.user_id, capabilities: row.capabilities, createdAt: row.created_at }
  }

  /** Deletes and notifies in one statement, so a deletion is never made without its word. */
  async delete(secret: string): Promise<void> {
    const rows = await this.#sql`
      WITH gone AS (DELETE FROM sessions WHERE secret = ${secret} RETURNING secret)
      SELECT pg_notify(${SESSION_DELETIONS}, ${this.#origin + ':' + secret}) FROM gone`
    if (rows.length > 0) this.#emit(secret)
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
