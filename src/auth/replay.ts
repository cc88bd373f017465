import { fail } from '../errors.js'
import { MAX_SKEW_MS } from './token.js'

export interface ReplayGuardOptions {
  /** How long after its timestamp a token is still accepted: the verifier's skew. */
  windowMs?: number
  /** Hard cap on remembered tokens. */
  maxEntries?: number
  /** Milliseconds since the epoch; the verifier's clock. */
  now?: () => number
}

/**
 * Accepts each AuthToken once. A token needs remembering only until the verifier would refuse
 * it as too old (its timestamp + the skew window), so entries are filed in one-second buckets
 * by that moment and dropped as the clock passes it: at most ~2 × window / 1 s live buckets.
 *
 * At the cap, with every entry still inside its window, a new token is refused with 503
 * rather than an entry forgotten: forgetting would let that token be replayed. The cap is
 * reached only by more sign-ins within one window than it allows, and clears as they age.
 *
 * Tokens are keyed by signature, which is sound because verification is strict (RFC 8032):
 * a signed token has one valid signature encoding, so it cannot be re-sent in another form.
 */
export class ReplayGuard {
  readonly #windowMs: number
  readonly #maxEntries: number
  readonly #now: () => number
  readonly #seen = new Set<string>()
  readonly #buckets = new Map<number, string[]>()
  #prunedAt = -Infinity

  constructor(options: ReplayGuardOptions = {}) {
    this.#windowMs = options.windowMs ?? MAX_SKEW_MS
    this.#maxEntries = options.maxEntries ?? 100_000
    this.#now = options.now ?? Date.now
  }

  get size(): number {
    return this.#seen.size
  }

  /** Records a verified token, or throws if it was seen before or memory is full. */
  claim(token: { signature: Uint8Array; timestamp: bigint }): void {
    this.#prune()
    const key = Buffer.from(token.signature.buffer, token.signature.byteOffset, token.signature.byteLength).toString('latin1')
    if (this.#seen.has(key)) fail('TokenReplayed', 'AuthToken already used')
    if (this.#seen.size >= this.#maxEntries) {
      fail('Unavailable', 'Too many sign-ins in the last few minutes, try again shortly')
    }
    const expiresMs = Number(token.timestamp / 1000n) + this.#windowMs
    const bucket = Math.floor(expiresMs / 1000) + 1
    this.#seen.add(key)
    const keys = this.#buckets.get(bucket)
    if (keys === undefined) this.#buckets.set(bucket, [key])
    else keys.push(key)
  }

  // a bucket's tokens are all refused as expired once the clock reaches the bucket's second
  #prune(): void {
    const second = Math.floor(this.#now() / 1000)
    if (second === this.#prunedAt) return
    this.#prunedAt = second
    for (const [bucket, keys] of this.#buckets) {
      if (bucket > second) continue
      for (const k of keys) this.#seen.delete(k)
      this.#buckets.delete(bucket)
    }
  }
}
