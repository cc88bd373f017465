import { fail } from '../errors.js'
import type { Store } from '../kv/store.js'
import { MAX_SKEW_MS } from './token.js'

export interface ReplayGuardOptions {
  /** How long after its timestamp a token is still accepted: the verifier's skew. */
  windowMs?: number
  /** Milliseconds since the epoch; the verifier's clock. */
  now?: () => number
}

/** How often expired entries are dropped from storage. */
const FORGET_EVERY_MS = 60_000

/**
 * Accepts each AuthToken once, across restarts and across every process sharing the store:
 * the set of accepted tokens lives in storage. A token needs remembering only until the
 * verifier would refuse it as too old (its timestamp + the skew window), so entries carry
 * that moment and are dropped once the clock passes it.
 *
 * Tokens are keyed by signature, which is sound because verification is strict (RFC 8032):
 * a signed token has one valid signature encoding, so it cannot be re-sent in another form.
 */
export class ReplayGuard {
  readonly #store: Store
  readonly #windowMs: number
  readonly #now: () => number
  #forgotAt = -Infinity

  constructor(store: Store, options: ReplayGuardOptions = {}) {
    this.#store = store
    this.#windowMs = options.windowMs ?? MAX_SKEW_MS
    this.#now = options.now ?? Date.now
  }

  /** Records a verified token, or throws if it was accepted before. */
  async claim(token: { signature: Uint8Array; timestamp: bigint }): Promise<void> {
    const now = this.#now()
    if (now - this.#forgotAt >= FORGET_EVERY_MS) {
      this.#forgotAt = now
      await this.#store.forgetTokens(now)
    }
    const key = Buffer.from(token.signature.buffer, token.signature.byteOffset, token.signature.byteLength).toString('hex')
    const expiresAt = Number(token.timestamp / 1000n) + this.#windowMs
    if (!(await this.#store.claimToken(key, expiresAt))) fail('TokenReplayed', 'AuthToken already used')
  }
}
