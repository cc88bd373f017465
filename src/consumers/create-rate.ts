import type { Rate } from '../config/config.js'

/**
 * CONSUMER_CREATE_RATE per user, as a token bucket: `burst` creations at once, then one more
 * each `perMs / count`. Buckets that have filled up again are forgotten, so memory follows
 * the users creating consumers right now. Each process keeps its own buckets.
 */
export class CreateRate {
  readonly #rate: Rate
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #now: () => number

  constructor(rate: Rate, now: () => number = Date.now) {
    this.#rate = rate
    this.#now = now
  }

  /** Takes one creation for `user`: undefined, or when refused the seconds until the next. */
  take(user: string): number | undefined {
    const { count, perMs, burst } = this.#rate
    const msPerToken = perMs / count
    const now = this.#now()
    const b = this.#buckets.get(user) ?? { tokens: burst, at: now }
    const tokens = Math.min(burst, b.tokens + (now - b.at) / msPerToken)
    if (tokens < 1) {
      return Math.ceil(((1 - tokens) * msPerToken) / 1000)
    }
    this.#buckets.set(user, { tokens: tokens - 1, at: now })
    if (this.#buckets.size > 10_000) this.#forgetFull(now, msPerToken, burst)
    return undefined
  }

  #forgetFull(now: number, msPerToken: number, burst: number): void {
    for (const [user, b] of this.#buckets) if (b.tokens + (now - b.at) / msPerToken >= burst) this.#buckets.delete(user)
  }
}
