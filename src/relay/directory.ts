import { backoffDelay, sleep } from 'hearth-homeserver-client/backoff'
import { refusedAddress } from './address-guard.js'
import { homeserverUrls } from './resolve.js'
import { ResolveError, resolveUserRecord, UNRESOLVED_REASONS, type UnresolvedReason } from './user-record.js'

/** Where a user's events are: the homeserver their record names, and where it serves. */
export interface Placement {
  homeserver: string
  url: string
}

export interface DirectoryOptions {
  /** pkarr relays to read records from */
  relays: readonly string[]
  /** RELAY_ALLOW_PRIVATE_ADDRESSES: reach homeservers on loopback, private and link-local addresses */
  allowPrivate: boolean
  /** a record is read again after its TTL, but never sooner than `minMs` nor later than `maxMs` */
  record: { minMs: number; maxMs: number }
  /** waits before reading a record again after a failure */
  retry: { baseMs: number; maxMs: number }
  /** records read per second at most, over all users */
  perSecond: number
  /** a user is placed for the first time, or anew: on another homeserver (a move) or URL */
  placed(user: string, now: Placement, before: Placement | undefined): void
  /** a user never placed could not be resolved, for a new reason (it is tried again after a backoff) */
  unresolved(user: string, err: ResolveError): void
}

interface Entry {
  placement?: Placement
  failure?: ResolveError
  failures: number
  timer?: NodeJS.Timeout
}

/** Record look-ups in flight at once. */
const IN_FLIGHT = 16

/**
 * Which homeserver each followed user is on, from the user's pkarr record, kept fresh: read
 * again when its TTL runs out (within the floor and ceiling), and after a failure with
 * backoff. A user once placed stays placed while a later read fails (a pkarr relay down is
 * not a move); a new record naming another homeserver is a move. Reads are rate-limited over
 * all users, so 10,000 users joining at once are read at `perSecond`, not at once.
 */
export class Directory {
  readonly #opts: DirectoryOptions
  readonly #users = new Map<string, Entry>()
  /** a homeserver's URL, from its own record, until it is read again */
  readonly #endpoints = new Map<string, { url: string; until: number }>()
  readonly #queue = new Set<string>()
  readonly #stop = new AbortController()
  #tokens: number
  #refilled = performance.now()
  #pumping: Promise<void> | undefined
  #pumpActive = false
  #inFlight = 0
  #wake: (() => void) | undefined
  readonly failures = new Map<UnresolvedReason, number>(UNRESOLVED_REASONS.map((r) => [r, 0]))
  moves = 0

  constructor(options: DirectoryOptions) {
    this.#opts = options
    this.#tokens = options.perSecond
  }

  want(user: string): void {
    if (this.#users.has(user)) return
    this.#users.set(user, { failures: 0 })
    this.#enqueue(user)
  }

  forget(user: string): void {
    clearTimeout(this.#users.get(user)?.timer)
    this.#users.delete(user)
    this.#queue.delete(user)
  }

  placement(user: string): Placement | undefined {
    return this.#users.get(user)?.placement
  }

  /** Why a user is not placed yet, if it is not. */
  failure(user: string): ResolveError | undefined {
    const e = this.#users.get(user)
    return e?.placement === undefined ? e?.failure : undefined
  }

  get unresolvedCount(): number {
    let n = 0
    for (const e of this.#users.values()) if (e.placement === undefined && e.failure !== undefined) n++
    return n
  }

  /** The homeservers users are placed on now, with how many users each. */
  homeservers(): Map<string, { url: string; users: number }> {
    const out = new Map<string, { url: string; users: number }>()
    for (const e of this.#users.values()) {
      if (e.placement === undefined) continue
      const h = out.get(e.placement.homeserver) ?? { url: e.placement.url, users: 0 }
      h.users++
      out.set(e.placement.homeserver, h)
    }
    return out
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    for (const e of this.#users.values()) clearTimeout(e.timer)
    this.#wake?.()
    await this.#pumping
  }

  #enqueue(user: string): void {
    if (this.#stop.signal.aborted) return
    this.#queue.add(user)
    if (this.#pumpActive) return
    this.#pumpActive = true
    this.#pumping = this.#pump()
  }

  async #pump(): Promise<void> {
    const signal = this.#stop.signal
    const { perSecond } = this.#opts
    for (;;) {
      // the flag is cleared in the very turn the queue is found empty: a user queued at any
      // moment is read by this pump, or starts the next one
      if (this.#queue.size === 0 || signal.aborted) {
        this.#pumpActive = false
        return
      }
      const now = performance.now()
      this.#tokens = Math.min(perSecond, this.#tokens + ((now - this.#refilled) / 1000) * perSecond)
      this.#refilled = now
      if (this.#tokens < 1) {
        await sleep(((1 - this.#tokens) / perSecond) * 1000, signal)
        continue
      }
      if (this.#inFlight >= IN_FLIGHT) {
        await new Promise<void>((resolve) => (this.#wake = resolve))
        continue
      }
      const user = this.#queue.values().next().value!
      this.#queue.delete(user)
      this.#tokens--
      this.#inFlight++
      void this.#resolve(user).finally(() => {
        this.#inFlight--
        this.#wake?.()
        this.#wake = undefined
      })
    }
  }

  async #resolve(user: string): Promise<void> {
    const signal = this.#stop.signal
    let next: number
    try {
      const record = await resolveUserRecord(user, this.#opts.relays, signal)
      const url = await this.endpoint(record.homeserver, signal)
      const entry = this.#users.get(user)
      if (entry === undefined || signal.aborted) return
      const before = entry.placement
      entry.placement = { homeserver: record.homeserver, url }
      entry.failure = undefined
      entry.failures = 0
      if (before !== undefined && before.homeserver !== record.homeserver) this.moves++
      if (before?.homeserver !== record.homeserver || before.url !== url) this.#opts.placed(user, entry.placement, before)
      const { minMs, maxMs } = this.#opts.record
      next = Math.min(maxMs, Math.max(minMs, record.ttl * 1000))
    } catch (err) {
      const entry = this.#users.get(user)
      if (entry === undefined || signal.aborted) return
      const e = err instanceof ResolveError ? err : new ResolveError('unreachable', (err as Error).message)
      this.failures.set(e.reason, this.failures.get(e.reason)! + 1)
      // subscribers hear of it once, and again only if the reason changes
      const news = entry.failure?.reason !== e.reason
      entry.failure = e
      if (entry.placement === undefined && news) this.#opts.unresolved(user, e)
      next = backoffDelay({ ...this.#opts.retry, jitter: 0.5 }, entry.failures++)
    }
    const entry = this.#users.get(user)
    if (entry === undefined) return
    clearTimeout(entry.timer)
    entry.timer = setTimeout(() => this.#enqueue(user), next)
    entry.timer.unref()
  }

  /** Where a homeserver serves, from its own signed record; refused if the relay may not reach it. */
  async endpoint(homeserver: string, signal = this.#stop.signal): Promise<string> {
    const known = this.#endpoints.get(homeserver)
    if (known !== undefined && known.until > Date.now()) return known.url
    let url: string
    try {
      url = (await homeserverUrls(homeserver, this.#opts.relays, signal))[0]!
    } catch (err) {
      if (signal.aborted) throw err
      throw new ResolveError('unreachable', `the homeserver ${homeserver} could not be resolved: ${(err as Error).message}`)
    }
    if (!this.#opts.allowPrivate) {
      const refused = await refusedAddress(url)
      if (refused !== undefined) throw new ResolveError('refused-address', refused)
    }
    this.#endpoints.set(homeserver, { url: url.replace(/\/+$/, ''), until: Date.now() + this.#opts.record.minMs })
    return url.replace(/\/+$/, '')
  }
}
