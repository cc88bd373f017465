import { fail } from './errors.js'

export interface SlotLimits {
  /** slots one key (a client address, a user) may hold at once: past it, 429 */
  perKey: number
  /** slots all keys may hold together: past it, 503 (none: no such bound) */
  total?: number
  /** what a slot is, for the refusal: `open streams per client` */
  what: string
}

/**
 * Things held at once, per key and in total (open streams per client address, uploads in
 * progress per user). A refused acquire throws the contract's error; the returned function
 * gives the slot back, once.
 */
export class Slots {
  readonly #limits: SlotLimits
  readonly #held = new Map<string, number>()
  #total = 0

  constructor(limits: SlotLimits) {
    this.#limits = limits
  }

  acquire(key: string): () => void {
    const n = this.#held.get(key) ?? 0
    if (n >= this.#limits.perKey) fail('TooManyRequests', `At most ${this.#limits.perKey} ${this.#limits.what}`)
    if (this.#limits.total !== undefined && this.#total >= this.#limits.total) {
      fail('Unavailable', `The server holds as many ${this.#limits.what.split(' per ')[0]} as it takes; try again shortly`)
    }
    this.#held.set(key, n + 1)
    this.#total++
    let released = false
    return () => {
      if (released) return
      released = true
      this.#total--
      const left = (this.#held.get(key) ?? 1) - 1
      if (left <= 0) this.#held.delete(key)
      else this.#held.set(key, left)
    }
  }
}
