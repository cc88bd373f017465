import type { StoreLog } from './log-types.js'
import type { Notifications } from './notifications.js'

/** The channel every commit notifies, with the new head as payload. */
export const COMMITS = 'hearth_commits'

/** How often the head is read in case a notification was lost, unless told otherwise. */
export const POLL_MS = 1000

/**
 * Tells this process of commits made anywhere on the database. Two paths, so that a lost
 * notification delays and never loses:
 * - LISTEN on `hearth_commits`: each commit's NOTIFY carries its new head and arrives in
 *   commit order. The LISTEN connection reconnects when it breaks (notifications.ts);
 *   notifications sent meanwhile are gone, so every watcher is then called with no head
 *   and re-reads from what it last knew.
 * - a poll of the head every `pollMs` (a second unless told otherwise), while anyone
 *   watches, which catches whatever the first path missed (a notification dropped while the
 *   connection was down, or never sent).
 * Watchers hear each head once, in increasing order, this process's own commits included.
 */
export class CommitWatcher {
  readonly #log: StoreLog
  readonly #readHead: () => Promise<number>
  readonly #pollMs: number
  readonly #listeners = new Set<(head?: number) => void>()
  #known = 0
  #timer: NodeJS.Timeout | undefined
  #polling = false
  #pollFailing = false

  /** Registers on `notifications`, which the caller then starts. */
  constructor(notifications: Notifications, log: StoreLog, readHead: () => Promise<number>, pollMs = POLL_MS) {
    this.#log = log
    this.#readHead = readHead
    this.#pollMs = pollMs
    notifications.on(COMMITS, (payload) => this.#heard(Number(payload)))
    notifications.onReconnect(() => this.#emit(undefined))
  }

  /** After LISTEN is in place: from here on, a head above this one is news. */
  async start(): Promise<void> {
    this.#known = Math.max(this.#known, await this.#readHead())
  }

  add(listener: (head?: number) => void): () => void {
    this.#listeners.add(listener)
    this.#timer ??= setInterval(() => void this.#poll(), this.#pollMs).unref()
    return () => {
      this.#listeners.delete(listener)
      if (this.#listeners.size > 0 || this.#timer === undefined) return
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#listeners.clear()
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
      if (!this.#pollFailing) this.#log.warn({ err: (err as Error).message }, 'reading the head failed; retrying at every poll')
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
