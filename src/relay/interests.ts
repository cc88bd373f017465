import { setOf } from '../shared/set-of.js'
import type { Filter } from '../subscriptions/filter.js'

/** A relay subscriber as the interests know it: told when one of its users cannot be followed. */
export interface Holder {
  unresolved(user: string, reason: string): void
}

interface Held {
  filter: Filter
  /** subscribers holding it now */
  count: number
  /** `--follow`: never lapses */
  standing: boolean
  /** set while nobody holds it: when it lapses */
  linger?: NodeJS.Timeout
}

/**
 * What the relay's subscribers want of followed users: each one-user filter, counted by the
 * subscribers that hold it. A filter nobody holds any more stays wanted for `lingerMs` (a
 * subscriber that reconnects finds it still followed), then lapses; a standing one (`--follow`)
 * never does. `changed(user)` is called whenever the set of a user's wanted filters changes,
 * and only then: a subscriber wanting what is already wanted changes nothing.
 */
export class Interests {
  readonly #lingerMs: number
  readonly #changed: (user: string) => void
  /** user → filter text → its holding */
  readonly #byUser = new Map<string, Map<string, Held>>()
  readonly #holders = new Map<string, Set<Holder>>()
  #stopped = false

  constructor(lingerMs: number, changed: (user: string) => void) {
    this.#lingerMs = lingerMs
    this.#changed = changed
  }

  stand(filter: Filter): void {
    this.#take(filter).standing = true
  }

  /** `holder` wants `filters` (each of one user) until the returned function is called. */
  hold(filters: readonly Filter[], holder: Holder): () => void {
    for (const f of filters) {
      this.#take(f).count++
      setOf(this.#holders, f.user).add(holder)
    }
    let released = false
    return () => {
      if (released) return
      released = true
      for (const f of filters) {
        this.#holders.get(f.user)?.delete(holder)
        if (this.#holders.get(f.user)?.size === 0) this.#holders.delete(f.user)
        this.#release(f)
      }
    }
  }

  /** Whether `user` is wanted now (held, lingering or standing). */
  has(user: string): boolean {
    return this.#byUser.has(user)
  }

  /** The filters wanted of `user`. */
  filtersOf(user: string): Filter[] {
    return [...(this.#byUser.get(user)?.values() ?? [])].map((h) => h.filter)
  }

  users(): IterableIterator<string> {
    return this.#byUser.keys()
  }

  get userCount(): number {
    return this.#byUser.size
  }

  /** The subscribers holding a filter of `user` now. */
  holders(user: string): ReadonlySet<Holder> {
    return this.#holders.get(user) ?? new Set()
  }

  stop(): void {
    this.#stopped = true
    for (const held of this.#byUser.values()) for (const h of held.values()) clearTimeout(h.linger)
  }

  #take(filter: Filter): Held {
    let held = this.#byUser.get(filter.user)
    if (held === undefined) this.#byUser.set(filter.user, (held = new Map()))
    let h = held.get(filter.text)
    if (h !== undefined) {
      clearTimeout(h.linger)
      h.linger = undefined
      return h
    }
    h = { filter, count: 0, standing: false }
    held.set(filter.text, h)
    this.#changed(filter.user)
    return h
  }

  #release(filter: Filter): void {
    const h = this.#byUser.get(filter.user)?.get(filter.text)
    if (h === undefined || --h.count > 0 || h.standing || this.#stopped) return
    h.linger = setTimeout(() => this.#lapse(filter), this.#lingerMs)
    h.linger.unref()
  }

  #lapse(filter: Filter): void {
    const held = this.#byUser.get(filter.user)
    const h = held?.get(filter.text)
    if (h === undefined || h.count > 0 || h.standing) return
    held!.delete(filter.text)
    if (held!.size === 0) this.#byUser.delete(filter.user)
    this.#changed(filter.user)
  }
}
