import { follow, type Follower } from '../client/follow.js'
import type { FollowEvent, ResetInfo } from '../client/events.js'
import { RetryableError } from '../client/stream.js'
import { backoffDelay, sleep } from '../client/backoff.js'
import { idOf } from '../shared/id.js'
import { Z32_KEY } from '../shared/keys.js'
import type { Store } from '../kv/store.js'
import type { OriginEvent, RelayIngest } from './ingest.js'
import { checkOriginEvent } from './origin-event.js'
import { resolveHomeserver } from './resolve.js'

/** `failed`: the last attempt failed; the next one waits its backoff. */
export type UpstreamState = 'connecting' | 'catching-up' | 'live' | 'failed'

/** Why an upstream was dropped, as counted: a fixed set, so it can be a metric label. */
export type UpstreamFault =
  | 'unreachable' // the network, a 5xx, a 429, no answer, a stream gone silent
  | 'protocol' // malformed or oversized frames, ids that do not increase, a refusal
  | 'invalid-event' // an event that no homeserver could have written (bad key or path, private)
  | 'key-changed' // `/info` names another homeserver than the one this upstream was
  | 'duplicate' // the same homeserver as another upstream of this relay
  | 'storage' // the relay could not commit

export const UPSTREAM_FAULTS: readonly UpstreamFault[] = ['unreachable', 'protocol', 'invalid-event', 'key-changed', 'duplicate', 'storage']

export interface UpstreamOptions {
  /** as configured: a URL, or a homeserver key */
  spec: string
  filters: readonly string[]
  store: Store
  ingest: RelayIngest
  /** pkarr relays for keys given as upstreams */
  pkarrRelays: readonly string[]
  /** a stream silent for this long, or a request unanswered, is dropped */
  idleMs: number
  /** true when another upstream of this relay already follows `homeserver` */
  taken: (homeserver: string, by: Upstream) => boolean
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void }
  /** reconnect backoff (default 1 s doubling to 30 s, full jitter) */
  backoff?: { baseMs: number; maxMs: number }
}

/** Events one upstream may have waiting for their commit before it stops reading. */
const MAX_IN_FLIGHT = 4096
/** Upstream frames longer than this are refused: an event is at most a few KiB. */
const MAX_FRAME = 64 * 1024

class UpstreamError extends Error {
  constructor(readonly fault: UpstreamFault, message: string) {
    super(message)
  }
}

/**
 * One homeserver the relay follows, with the project's own follower. It reads from the
 * relay's stored cursor, hands each event to the ingest, and acknowledges it once committed;
 * the cursor store of the follower is the relay's log itself (cursors are committed with the
 * events), so its own `save` does nothing.
 *
 * Anything that goes wrong — the network, a hostile or broken upstream, a failed commit —
 * ends the attempt: it is logged and counted, and the next attempt starts after a backoff,
 * again from the stored cursor. Nothing an upstream sends reaches the log unchecked, and
 * one upstream's trouble never waits on another's.
 */
export class Upstream {
  readonly spec: string
  #opts: UpstreamOptions
  #url: string | undefined
  #homeserver: string | undefined
  #cursor = 0
  #state: UpstreamState = 'connecting'
  #follower: Follower | undefined
  #lastError: string | undefined
  readonly #faults = new Map<UpstreamFault, number>(UPSTREAM_FAULTS.map((f) => [f, 0]))
  #resets = 0
  #events = 0
  readonly #stop = new AbortController()
  #running: Promise<void> | undefined

  constructor(options: UpstreamOptions) {
    this.spec = options.spec
    this.#opts = options
  }

  get url(): string | undefined {
    return this.#url
  }

  /** the homeserver's key, once known */
  get homeserver(): string | undefined {
    return this.#homeserver
  }

  /** the last upstream seq committed to the relay's log */
  get cursor(): number {
    return this.#cursor
  }

  get state(): UpstreamState {
    return this.#state
  }

  /** events between the committed cursor and the upstream's head, as last seen */
  get lag(): number {
    return this.#follower?.lag ?? 0
  }

  get lastError(): string | undefined {
    return this.#lastError
  }

  get resets(): number {
    return this.#resets
  }

  /** events relayed by this process */
  get relayed(): number {
    return this.#events
  }

  faults(): ReadonlyMap<UpstreamFault, number> {
    return this.#faults
  }

  start(): void {
    this.#running ??= this.#run()
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    await this.#follower?.close()
    await this.#running
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal
    const { baseMs = 1000, maxMs = 30_000 } = this.#opts.backoff ?? {}
    let attempt = 0
    while (!signal.aborted) {
      const before = this.#events
      try {
        await this.#attempt(signal)
      } catch (err) {
        if (signal.aborted) break
        this.#fail(err)
      }
      if (signal.aborted) break
      // an attempt that relayed something was a good one: the next wait starts short again
      attempt = this.#events > before ? 0 : attempt + 1
      this.#state = 'failed'
      await sleep(backoffDelay(attempt, baseMs, maxMs), signal)
    }
  }

  #fail(err: unknown): void {
    const fault = err instanceof UpstreamError ? err.fault : faultOf(err)
    this.#faults.set(fault, this.#faults.get(fault)! + 1)
    this.#lastError = (err as Error).message
    this.#opts.log.warn({ upstream: this.spec, url: this.#url, fault, reason: this.#lastError }, 'relay: upstream dropped, retrying')
  }

  /** One connection's worth of following: resolve, check who answers, follow until something breaks. */
  async #attempt(signal: AbortSignal): Promise<void> {
    this.#state = 'connecting'
    const url = Z32_KEY.test(this.spec) ? await resolveHomeserver(this.spec, this.#opts.pkarrRelays, signal) : this.spec
    this.#url = url.replace(/\/+$/, '')
    const stored = (await this.#opts.store.upstreamCursors()).find((c) => c.upstream === this.spec)
    const expected = stored?.homeserver ?? (Z32_KEY.test(this.spec) ? this.spec : this.#homeserver)
    const key = await this.#infoKey(this.#url, signal)
    if (expected !== undefined && key !== expected) {
      throw new UpstreamError('key-changed', `${this.#url}/info names ${key}, but this upstream is ${expected}`)
    }
    if (this.#opts.taken(key, this)) throw new UpstreamError('duplicate', `${key} is already followed through another upstream`)
    this.#homeserver = key
    this.#cursor = stored?.cursor ?? 0
    // the key is kept from the first contact, before any event, so a later impostor is refused
    if (stored === undefined) await this.#commit(this.#opts.ingest.moveCursor({ upstream: this.spec, homeserver: key, cursor: 0 }))
    await this.#follow(this.#url, key, signal)
  }

  async #follow(url: string, key: string, signal: AbortSignal): Promise<void> {
    const stop = new AbortController()
    const abort = () => stop.abort()
    signal.addEventListener('abort', abort, { once: true })
    let failure: unknown
    const fail = (err: unknown) => {
      failure ??= err
      stop.abort()
    }
    const follower = follow({
      url,
      filters: this.#opts.filters,
      cursorStore: { load: async () => idOf(this.#cursor), save: async () => {} },
      ack: 'explicit',
      maxUnacked: MAX_IN_FLIGHT * 2,
      signal: stop.signal,
      idleTimeoutMs: this.#opts.idleMs,
      maxFrameBytes: MAX_FRAME,
      backoff: this.#opts.backoff,
      // every (re)connect reads /info first: a different homeserver behind the URL ends the attempt
      fetch: this.#checkedFetch(key, fail),
      onState: (s) => s !== 'closed' && (this.#state = s),
      onRetry: ({ error }) => {
        const fault = faultOf(error)
        this.#faults.set(fault, this.#faults.get(fault)! + 1)
        this.#lastError = error.message
        this.#state = 'failed'
        this.#opts.log.warn({ upstream: this.spec, url, fault, reason: error.message }, 'relay: upstream unreachable, retrying')
      },
      onReset: (info) => this.#reset(key, info),
    })
    this.#follower = follower
    let inFlight: Promise<void> = Promise.resolve()
    let waiting = 0
    try {
      for await (const ev of follower) {
        const event = checkOriginEvent(ev, key)
        if (typeof event === 'string') throw new UpstreamError('invalid-event', `${url} sent ${event}`)
        waiting++
        inFlight = this.#commit(this.#opts.ingest.add(this.spec, event)).then(
          () => this.#committed(ev, event),
          fail,
        ).finally(() => waiting--)
        if (waiting >= MAX_IN_FLIGHT) await inFlight
      }
      await inFlight
    } catch (err) {
      fail(err)
    } finally {
      signal.removeEventListener('abort', abort)
      await follower.close()
    }
    if (failure !== undefined && !signal.aborted) throw failure
  }

  #committed(ev: FollowEvent, event: OriginEvent): void {
    ev.ack()
    if (event.originSeq > this.#cursor) this.#cursor = event.originSeq
    this.#events++
  }

  /** The upstream pruned past the cursor: say so, and go on from its floor. */
  async #reset(key: string, info: ResetInfo): Promise<void> {
    this.#resets++
    this.#opts.log.warn({ upstream: this.spec, requested: info.requested, floor: info.floor }, 'relay: upstream pruned events the relay had not read; going on from its floor')
    const cursor = Number(info.floor) - 1
    await this.#commit(this.#opts.ingest.moveCursor({ upstream: this.spec, homeserver: key, cursor }))
    if (cursor > this.#cursor) this.#cursor = cursor
  }

  /** A failed commit is the relay's fault, not the upstream's: counted as such. */
  async #commit(done: Promise<void>): Promise<void> {
    try {
      await done
    } catch (err) {
      throw new UpstreamError('storage', `the relay could not commit: ${(err as Error).message}`)
    }
  }

  async #infoKey(url: string, signal: AbortSignal): Promise<string> {
    let res: Response
    try {
      res = await fetch(`${url}/info`, { signal: AbortSignal.any([signal, AbortSignal.timeout(this.#opts.idleMs)]) })
    } catch (err) {
      if (signal.aborted) throw err
      throw new UpstreamError('unreachable', `cannot reach ${url}: ${(err as Error).message}`)
    }
    if (!res.ok) throw new UpstreamError(res.status >= 500 || res.status === 429 ? 'unreachable' : 'protocol', `${url}/info answered ${res.status}`)
    const key = await infoKey(res)
    if (key === undefined) throw new UpstreamError('protocol', `${url}/info does not name a homeserver key`)
    return key
  }

  /** `fetch` for the follower: an `/info` naming another key ends the attempt. */
  #checkedFetch(key: string, fail: (err: unknown) => void): typeof fetch {
    return async (input, init) => {
      const res = await fetch(input, init)
      if (!String(input).endsWith('/info') || !res.ok) return res
      const named = await infoKey(res.clone())
      if (named !== key) {
        const err = new UpstreamError('key-changed', `${String(input)} now names ${named ?? 'no key'}, not ${key}`)
        fail(err)
        throw err
      }
      return res
    }
  }
}

async function infoKey(res: Response): Promise<string | undefined> {
  const body = (await res.json().catch(() => undefined)) as { publicKey?: unknown } | undefined
  const key = body?.publicKey
  return typeof key === 'string' && Z32_KEY.test(key) ? key : undefined
}

/** Errors from the follower: what it retries is the network; what it gives up on is the protocol. */
function faultOf(err: unknown): UpstreamFault {
  if (err instanceof UpstreamError) return err.fault
  const cause = (err as { cause?: unknown }).cause
  if (cause instanceof UpstreamError) return cause.fault
  return err instanceof RetryableError ? 'unreachable' : 'protocol'
}
