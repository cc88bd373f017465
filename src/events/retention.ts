import type { EventLog } from './event-log.js'

export type RetentionPolicy = { count: number } | { ms: number }

/** How often the policy is applied; a sweep with nothing to prune costs one read. */
export const SWEEP_EVERY_MS = 1000

/**
 * `EVENT_RETENTION`: keeps the newest `count` events, or those younger than `ms`, by raising
 * the log's floor from a background timer. Pruning runs in chunks between the writer's
 * commits, so writes never wait for it; sweeps never overlap.
 */
export class Retention {
  readonly #events: EventLog
  readonly #policy: RetentionPolicy
  readonly #onError: (err: unknown) => void
  #timer: NodeJS.Timeout | undefined
  #running: Promise<number> | undefined

  constructor(events: EventLog, policy: RetentionPolicy, onError: (err: unknown) => void = () => {}) {
    this.#events = events
    this.#policy = policy
    this.#onError = onError
  }

  start(everyMs = SWEEP_EVERY_MS): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => void this.sweep().catch(this.#onError), everyMs)
    this.#timer.unref()
  }

  /** Stops the timer and waits for a sweep in progress, so the store can close after. */
  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#running?.catch(() => 0)
  }

  /** Applies the policy once; resolves with the number of events removed. */
  sweep(): Promise<number> {
    this.#running ??= this.#prune().finally(() => (this.#running = undefined))
    return this.#running
  }

  async #prune(): Promise<number> {
    const floor = 'count' in this.#policy ? this.#events.head - this.#policy.count + 1 : await this.#firstSince(Date.now() - this.#policy.ms)
    return floor > this.#events.floor ? this.#events.prune(floor) : 0
  }

  /**
   * The first seq committed at or after `ts`, scanning at most MAX_SCAN events from the
   * floor: a long backlog is pruned over several sweeps instead of one long scan.
   */
  async #firstSince(ts: number): Promise<number> {
    let after = this.#events.floor - 1
    for (let scanned = 0; scanned < MAX_SCAN; ) {
      const { events: page } = await this.#events.read(after, PAGE)
      for (const ev of page) {
        if (ev.ts >= ts) return ev.seq
        after = ev.seq
      }
      if (page.length < PAGE) break
      scanned += page.length
    }
    return after + 1
  }
}

const PAGE = 1000
const MAX_SCAN = 100_000
