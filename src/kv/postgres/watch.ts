import type { Sql } from './connect.js'
import type { StoreLog } from './log-types.js'

/** The channel every commit notifies, with the new head as payload. */
export const COMMITS = 'hearth_commits'

/** How often the head is read in case a notification was lost. */
const POLL_MS = 1000

/**
 * Tells this process of commits made anywhere on the database. Two paths, so that a lost
 * notification delays and never loses:
 * - LISTEN on `hearth_commits`: each commit's NOTIFY carries its new head and arrives in
 *   commit order. The driver keeps the LISTEN connection and listens again after it
 *   reconnects; notifications sent meanwhile are gone, so every watcher is then called with
 *   no head and re-reads from what it last knew.
 * - a poll of the head every second, while anyone watches, which catches whatever the first
 *   path missed (a notification dropped while the connection was down, or never sent).
 * Watchers hear each head once, in increasing order, this process's own commits included.
 */
export class CommitWatcher {
  readonly #sql: Sql
  readonly #log: StoreLog
  readonly #readHead: () => Promise<number>
  readonly #listeners = new Set<(head?: number) => void>()
  #known = 0
  #timer: NodeJS.Timeout | undefined
  #polling = false
  #pollFailing = false
  #unlisten: (() => Promise<void>) | undefined

  constructor(sql: Sql, log: StoreLog, readHead: () => Promise<number>) {
    this.#sql = sql
    this.#log = log
    this.#readHead = readHead
  }

  /** Resolves once LISTEN is in place: commits from then on are heard. */
  async start(): Promise<void> {
    let listening = false
    const meta = await this.#sql.listen(
      COMMITS,
      (payload) => this.#heard(Number(payload)),
      () => {
        if (!listening) return void (listening = true)
        this.#log.info({ channel: COMMITS }, 'listening for commits again after a reconnect')
        this.#emit(undefined)
      },
    )
    this.#unlisten = meta.unlisten
    this.#known = Math.max(this.#known, await this.#readHead())
  }

  add(listener: (head?: number) => void): () => void {
    this.#listeners.add(listener)
    this.#timer ??= setInterval(() => void this.#poll(), POLL_MS).unref()
    return () => {
      this.#listeners.delete(listener)
      if (this.#listeners.size > 0 || this.#timer === undefined) return
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#listeners.clear()
    await this.#unlisten?.().catch(() => {})
  }

  #heard(head: number): void {
    if (!Number.isSafeInteger(head) || head <= this.#known) return
    this.#known = head
    this.#emit(head)
  }

  async #poll(): Promise<void> {
    if (this.#polling) return
    this.#polling = true
    try {
      this.#heard(await this.#readHead())
      if (this.#pollFailing) this.#log.info({}, 'reading the head works again')
      this.#pollFailing = false
    } catch (err) {
      if (!this.#pollFailing) this.#log.warn({ err: (err as Error).message }, 'reading the head failed; retrying every second')
      this.#pollFailing = true
    } finally {
      this.#polling = false
    }
  }

  #emit(head: number | undefined): void {
    for (const listener of this.#listeners) {
      try {
        listener(head)
      } catch (err) {
        this.#log.error({ err }, 'a commit watcher threw')
      }
    }
  }
}
