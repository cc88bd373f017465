import { FutureCursorError, type ResetInfo } from 'hearth-homeserver-client'
import { smallBody } from 'hearth-homeserver-client/stream'
import { seqOfId } from 'hearth-homeserver-client/id'
import type { Store } from '../kv/store.js'
import { HomeserverMismatch, type Attempt, type RelayIngest } from './ingest.js'
import { pumpStream } from './stream-pump.js'
import { filterMatches, parseFilters, type Filter } from '../subscriptions/filter.js'
import { resolveHomeserver } from './resolve.js'
import { refusal } from './proof.js'
import { infoKey, refuseRedirect, UpstreamError, type UpstreamFault } from './upstream-fetch.js'
import { RetryLoop, type UpstreamState } from './retry-loop.js'
import { parseUpstream, sourceOf, type UpstreamSpec } from './upstream-spec.js'

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
  readonly #loop: RetryLoop
  /** the relay's own filters: an event outside them is not stored */
  readonly #filters: Filter[]
  /** events an upstream sent that no filter of the relay asked for, dropped */
  #unasked = 0
  #resets = 0

  constructor(options: UpstreamOptions) {
    this.spec = options.spec
    const parsed = parseUpstream(options.spec)
    if (parsed === undefined) throw new TypeError(`${options.spec} is not an upstream`)
    this.#parsed = parsed
    this.#source = sourceOf(parsed)
    this.#opts = options
    this.#filters = parseFilters(options.filters)
    this.#loop = new RetryLoop({
      attempt: (signal) => this.#attempt(signal),
      failed: (fault, reason) => options.log.warn({ upstream: this.spec, url: this.#url, fault, reason }, 'relay: upstream dropped, retrying'),
      backoff: options.backoff,
    })
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
    return this.#loop.state
  }

  /** events between the committed cursor and the upstream's head, as last seen */
  get lag(): number {
    return this.#loop.follower?.lag ?? 0
  }

  get lastError(): string | undefined {
    return this.#loop.lastError
  }

  get resets(): number {
    return this.#resets
  }

  /** events relayed by this process */
  get relayed(): number {
    return this.#loop.relayed
  }

  /** events the upstream sent that none of the relay's filters asked for, not stored */
  get unasked(): number {
    return this.#unasked
  }

  faults(): ReadonlyMap<UpstreamFault, number> {
    return this.#loop.faults()
  }

  start(): void {
    this.#loop.start()
  }

  async stop(): Promise<void> {
    await this.#loop.stop()
  }

  /**
   * One connection's worth of following: resolve, prove who answers, follow until something
   * breaks. Nothing is stored for an upstream before the key it speaks for is proven.
   */
  async #attempt(signal: AbortSignal): Promise<void> {
    this.#loop.state = 'connecting'
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
    this.#opts.ingest.book.addSource(this.#source, named, this.#filters)
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
    try {
      await pumpStream({
        url,
        homeserver: attempt.homeserver,
        filters: this.#opts.filters,
        from: this.#cursor,
        idleMs: this.#opts.idleMs,
        backoff: this.#opts.backoff,
        signal,
        opened: (follower) => void (this.#loop.follower = follower),
        state: (s) => this.#loop.following(s),
        retry: (error) => {
          const fault = this.#loop.count(error)
          this.#loop.state = 'failed'
          this.#opts.log.warn({ upstream: this.spec, url, fault, reason: error.message }, 'relay: upstream unreachable, retrying')
        },
        reset: (info) => this.#reset(attempt, info),
        take: (event) => {
          // what the relay was not asked to follow is not stored, whatever the upstream sends
          if (!this.#filters.some((f) => filterMatches(f, event))) {
            this.#unasked++
            return undefined
          }
          return this.#commit(this.#opts.ingest.add(attempt, event)).then((appended) => {
            if (event.originSeq > this.#cursor) this.#cursor = event.originSeq
            if (appended) this.#loop.relayed++
          })
        },
        // positions scanned past without a match are committed too, so a restart does not scan
        // them again, and a filtered relay does not take an upstream's pruning for a loss
        scanned: (at) => at <= this.#cursor ? undefined : this.#commit(this.#opts.ingest.moveCursor(attempt, at)).then(() => void (this.#cursor = Math.max(this.#cursor, at))),
      })
    } catch (err) {
      if (err instanceof FutureCursorError) return this.#rewind(attempt, err)
      throw err
    }
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
}

