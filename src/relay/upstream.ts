import { follow, type Follower } from 'hearth-homeserver-client/follow'
import { FutureCursorError, type FollowEvent, type ResetInfo } from 'hearth-homeserver-client'
import { RetryableError, shortLine, smallBody } from 'hearth-homeserver-client/stream'
import { backoffDelay, sleep } from 'hearth-homeserver-client/backoff'
import { idOf, seqOfId } from 'hearth-homeserver-client/id'
import { Z32_KEY } from '../shared/keys.js'
import type { Store } from '../kv/store.js'
import { HomeserverMismatch, type Attempt, type OriginEvent, type RelayIngest } from './ingest.js'
import { checkOriginEvent } from './origin-event.js'
import { filterMatches, parseFilters, type Filter } from '../subscriptions/filter.js'
import { resolveHomeserver } from './resolve.js'
import { refusal } from './proof.js'
import { parseUpstream, sourceOf, type UpstreamSpec } from './upstream-spec.js'

/** `failed`: the last attempt failed; the next one waits its backoff. */
export type UpstreamState = 'connecting' | 'catching-up' | 'live' | 'failed'

/** Why an upstream was dropped, as counted: a fixed set, so it can be a metric label. */
export type UpstreamFault =
  | 'unreachable' // the network, a 5xx, a 429, no answer, a stream gone silent
  | 'protocol' // malformed or oversized frames, ids that do not increase, a refusal
  | 'invalid-event' // an event that no homeserver could have written (bad key or path, private)
  | 'key-changed' // `/info` names another homeserver than the one this upstream was
  | 'unproven' // a URL whose `/info` names a key that neither a pin nor the key's pkarr record vouches for
  | 'duplicate' // the same homeserver as another upstream of this relay
  | 'storage' // the relay could not commit

export const UPSTREAM_FAULTS: readonly UpstreamFault[] = ['unreachable', 'protocol', 'invalid-event', 'key-changed', 'unproven', 'duplicate', 'storage']

export interface UpstreamOptions {
  /** as configured, in its one spelling: a homeserver key, `<key>@<url>`, or a URL */
  spec: string
  filters: readonly string[]
  store: Store
  ingest: RelayIngest
  /** pkarr relays: where keys given as upstreams are resolved, and URLs' keys proven */
  pkarrRelays: readonly string[]
  /** a stream silent for this long, or a request unanswered, is dropped */
  idleMs: number
  /** the other upstream of this relay that already follows `homeserver`, if one does */
  taken: (homeserver: string, by: Upstream) => Upstream | undefined
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void }
  /** reconnect backoff (default 1 s doubling to 30 s, full jitter) */
  backoff?: { baseMs: number; maxMs: number }
}

/** Events one upstream may have waiting for their commit before it stops reading. */
const MAX_IN_FLIGHT = 4096
/** How often positions scanned past without a match are committed. */
const SCANNED_EVERY_MS = 1000
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
  readonly #parsed: UpstreamSpec
  /** where its cursor is kept: see sourceOf */
  readonly #source: string
  #opts: UpstreamOptions
  #url: string | undefined
  #homeserver: string | undefined
  #cursor = 0
  #state: UpstreamState = 'connecting'
  #follower: Follower | undefined
  #lastError: string | undefined
  readonly #faults = new Map<UpstreamFault, number>(UPSTREAM_FAULTS.map((f) => [f, 0]))
  /** the relay's own filters: an event outside them is not stored */
  readonly #filters: Filter[]
  /** events an upstream sent that no filter of the relay asked for, dropped */
  #unasked = 0
  #resets = 0
  #events = 0
  readonly #stop = new AbortController()
  #running: Promise<void> | undefined

  constructor(options: UpstreamOptions) {
    this.spec = options.spec
    const parsed = parseUpstream(options.spec)
    if (parsed === undefined) throw new TypeError(`${options.spec} is not an upstream`)
    this.#parsed = parsed
    this.#source = sourceOf(parsed)
    this.#opts = options
    this.#filters = parseFilters(options.filters)
  }

  get url(): string | undefined {
    return this.#url
  }

  /** the homeserver's key, once proven; kept by this upstream for the life of the process */
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

  /** events the upstream sent that none of the relay's filters asked for, not stored */
  get unasked(): number {
    return this.#unasked
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
      await sleep(backoffDelay({ baseMs, maxMs, jitter: 1 }, attempt), signal)
    }
  }

  #fail(err: unknown): void {
    const fault = err instanceof UpstreamError ? err.fault : faultOf(err)
    this.#faults.set(fault, this.#faults.get(fault)! + 1)
    this.#lastError = shortLine((err as Error).message)
    this.#opts.log.warn({ upstream: this.spec, url: this.#url, fault, reason: this.#lastError }, 'relay: upstream dropped, retrying')
  }

  /**
   * One connection's worth of following: resolve, prove who answers, follow until something
   * breaks. Nothing is stored for an upstream before the key it speaks for is proven.
   */
  async #attempt(signal: AbortSignal): Promise<void> {
    this.#state = 'connecting'
    const spec = this.#parsed
    this.#url = spec.kind === 'key' ? (await this.#resolve(spec.key, signal)).replace(/\/+$/, '') : spec.url
    const named = await this.#infoKey(this.#url, signal)
    const refused = await refusal(spec, this.#url, named, this.#opts.pkarrRelays, signal)
    if (refused !== undefined) throw new UpstreamError(refused.fault, refused.message)
    const stored = (await this.#opts.store.upstreamCursors()).find((c) => c.upstream === this.#source)
    if (stored !== undefined && stored.homeserver !== named) {
      throw new UpstreamError('key-changed', `${this.#url}/info names ${named}, but ${this.#source} was ${stored.homeserver}`)
    }
    // one homeserver, one source: a second source for the same key is refused, never merged,
    // so no cursor is ever moved by what another source sent
    const holder = this.#opts.taken(named, this)
    if (holder !== undefined) throw new UpstreamError('duplicate', `${named} is already followed through ${holder.spec}`)
    this.#homeserver = named
    this.#cursor = stored?.cursor ?? 0
    const attempt: Attempt = { upstream: this.#source, homeserver: named }
    // the key is kept from the first contact, before any event, so a later impostor is refused
    if (stored === undefined) await this.#commit(this.#opts.ingest.moveCursor(attempt, 0))
    if (signal.aborted) return
    await this.#follow(this.#url, attempt, signal)
  }

  async #resolve(key: string, signal: AbortSignal): Promise<string> {
    try {
      return await resolveHomeserver(key, this.#opts.pkarrRelays, signal)
    } catch (err) {
      if (signal.aborted) throw err
      throw new UpstreamError('unreachable', (err as Error).message)
    }
  }

  async #follow(url: string, attempt: Attempt, signal: AbortSignal): Promise<void> {
    const key = attempt.homeserver
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
      onState: (s) => {
        if (s === 'closed') return
        this.#state = s
        if (s === 'live') this.#lastError = undefined // what failed before is over; /info says so
      },
      onRetry: ({ error }) => {
        const fault = faultOf(error)
        this.#faults.set(fault, this.#faults.get(fault)! + 1)
        this.#lastError = shortLine(error.message)
        this.#state = 'failed'
        this.#opts.log.warn({ upstream: this.spec, url, fault, reason: error.message }, 'relay: upstream unreachable, retrying')
      },
      onReset: (info) => this.#reset(attempt, info),
    })
    this.#follower = follower
    // positions scanned past without a match are committed too, so a restart does not scan
    // them again, and a filtered relay does not take an upstream's pruning for a loss
    const scanned = setInterval(() => {
      const at = follower.cursor === undefined ? 0 : Number(seqOfId(follower.cursor) ?? 0)
      if (at <= this.#cursor) return
      this.#commit(this.#opts.ingest.moveCursor(attempt, at)).then(() => void (this.#cursor = Math.max(this.#cursor, at)), fail)
    }, SCANNED_EVERY_MS)
    let inFlight: Promise<void> = Promise.resolve()
    let waiting = 0
    try {
      if (signal.aborted) stop.abort()
      for await (const ev of follower) {
        const event = checkOriginEvent(ev, key)
        if (typeof event === 'string') throw new UpstreamError('invalid-event', `${url} sent ${event}`)
        // what the relay was not asked to follow is not stored, whatever the upstream sends
        if (!this.#filters.some((f) => filterMatches(f, event))) {
          this.#unasked++
          ev.ack()
          continue
        }
        waiting++
        inFlight = this.#commit(this.#opts.ingest.add(attempt, event)).then(
          (appended) => this.#committed(ev, event, appended),
          fail,
        ).finally(() => waiting--)
        if (waiting >= MAX_IN_FLIGHT) await inFlight
      }
    } catch (err) {
      fail(err)
    } finally {
      clearInterval(scanned)
      signal.removeEventListener('abort', abort)
      await follower.close()
      // this attempt's events still waiting for their commit land (or fail) before the next
      // attempt reads the stored cursor: in order, and never more than MAX_IN_FLIGHT at once
      await inFlight.catch(() => {})
    }
    if (signal.aborted) return
    if (failure instanceof FutureCursorError) return this.#rewind(attempt, failure)
    if (failure !== undefined) throw failure
  }

  #committed(ev: FollowEvent, event: OriginEvent, appended: boolean): void {
    ev.ack()
    if (event.originSeq > this.#cursor) this.#cursor = event.originSeq
    if (appended) this.#events++
  }

  /** The upstream pruned past the cursor: say so, and go on from its floor. */
  async #reset(attempt: Attempt, info: ResetInfo): Promise<void> {
    const floor = Number(info.floor)
    if (!Number.isSafeInteger(floor)) throw new UpstreamError('protocol', `the upstream sent a reset to floor ${info.floor}`)
    this.#resets++
    this.#opts.log.warn({ upstream: this.spec, requested: info.requested, floor: info.floor }, 'relay: upstream pruned events the relay had not read; going on from its floor')
    await this.#commit(this.#opts.ingest.moveCursor(attempt, floor - 1))
    if (floor - 1 > this.#cursor) this.#cursor = floor - 1
  }

  /**
   * The upstream's head is behind the relay's cursor: its log is not the one relayed (a
   * homeserver reinstalled with its key, or restored from an older backup). Waiting for the
   * head to pass the cursor would skip every event it writes until then, for good; the relay
   * cannot tell which of its seqs still mean the same events. So it keeps what it relayed,
   * says so, and relays the upstream's log again from its start: an event may come twice,
   * none is lost.
   */
  async #rewind(attempt: Attempt, err: FutureCursorError): Promise<void> {
    const from = Number(seqOfId(err.cursor) ?? 0)
    if (from === 0) throw new UpstreamError('protocol', 'the upstream says seq 0 is past its head')
    if (await this.#commit(this.#opts.ingest.rewind(attempt, from))) {
      this.#resets++
      this.#cursor = 0
      this.#opts.log.warn({ upstream: this.spec, cursor: from, head: err.head }, "relay: the upstream's head is behind the relay's cursor (reinstalled or restored); relaying its log again from its start")
    }
  }

  /** A failed commit is the relay's fault, not the upstream's: counted as such. */
  async #commit(done: Promise<boolean>): Promise<boolean> {
    try {
      return await done
    } catch (err) {
      if (err instanceof HomeserverMismatch) throw new UpstreamError('key-changed', err.message)
      throw new UpstreamError('storage', `the relay could not commit: ${(err as Error).message}`)
    }
  }

  async #infoKey(url: string, signal: AbortSignal): Promise<string> {
    const timeout = AbortSignal.any([signal, AbortSignal.timeout(this.#opts.idleMs)])
    let key: string | undefined
    try {
      const res = await fetch(`${url}/info`, { signal: timeout, redirect: 'manual' })
      refuseRedirect(res, `${url}/info`)
      if (!res.ok) {
        await res.body?.cancel()
        throw new UpstreamError(res.status >= 500 || res.status === 429 ? 'unreachable' : 'protocol', `${url}/info answered ${res.status}`)
      }
      key = infoKey(await smallBody(res, this.#opts.idleMs, timeout))
    } catch (err) {
      if (signal.aborted || err instanceof UpstreamError) throw err
      throw new UpstreamError('unreachable', `cannot reach ${url}: ${(err as Error).message}`)
    }
    if (key === undefined) throw new UpstreamError('protocol', `${url}/info does not name a homeserver key`)
    return key
  }

  /** `fetch` for the follower: an `/info` naming another key ends the attempt. */
  #checkedFetch(key: string, fail: (err: unknown) => void): typeof fetch {
    return async (input, init) => {
      const res = await fetch(input, { ...init, redirect: 'manual' })
      refuseRedirect(res, String(input))
      if (!String(input).endsWith('/info') || !res.ok) return res
      const text = await smallBody(res, this.#opts.idleMs, init?.signal ?? new AbortController().signal)
      const named = infoKey(text)
      if (named !== key) {
        const err = named === undefined
          ? new UpstreamError('protocol', `${String(input)} does not name a homeserver key`)
          : new UpstreamError('key-changed', `${String(input)} now names ${named}, not ${key}`)
        fail(err)
        throw err
      }
      return new Response(text, { status: res.status, headers: res.headers })
    }
  }
}

function infoKey(text: string): string | undefined {
  let key: unknown
  try {
    key = (JSON.parse(text) as { publicKey?: unknown } | null)?.publicKey
  } catch {
    return undefined
  }
  return typeof key === 'string' && Z32_KEY.test(key) ? key : undefined
}

/** Errors from the follower: what it retries is the network; what it gives up on is the protocol. */
function faultOf(err: unknown): UpstreamFault {
  if (err instanceof UpstreamError) return err.fault
  const cause = (err as { cause?: unknown }).cause
  if (cause instanceof UpstreamError) return cause.fault
  return err instanceof RetryableError ? 'unreachable' : 'protocol'
}

/**
 * An upstream never sends the relay elsewhere: a redirect could point it at a service behind
 * the relay's own network, whose answers would then reach the relay's public `/info`.
 */
function refuseRedirect(res: Response, url: string): void {
  if (res.status < 300 || res.status >= 400) return
  void res.body?.cancel()
  throw new UpstreamError('protocol', `${url} answered a redirect (${res.status}); a relay follows none`)
}
