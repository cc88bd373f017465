import { fail } from '../errors.js'

/** Open streams per client address; past the limit a new stream is refused with 429. */
export class StreamLimiter {
  readonly #max: number
  readonly #open = new Map<string, number>()

  constructor(max: number) {
    this.#max = max
  }

  /** Takes a slot for `ip` or throws; the returned function gives it back (once). */
  acquire(ip: string): () => void {
    const n = this.#open.get(ip) ?? 0
    if (n >= this.#max) fail('TooManyRequests', `At most ${this.#max} open streams per client`)
    this.#open.set(ip, n + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#open.get(ip) ?? 1) - 1
      if (left <= 0) this.#open.delete(ip)
      else this.#open.set(ip, left)
    }
  }
}
