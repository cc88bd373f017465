import { filterMatches, type Filter } from '../subscriptions/filter.js'
import type { Attempt, RelayIngest } from './ingest.js'
import { pumpStream } from './stream-pump.js'
import { UpstreamError, type UpstreamFault } from './upstream-fetch.js'
import { RetryLoop, type UpstreamState } from './retry-loop.js'

/** Why a followed homeserver's event was not stored, as counted: a fixed set, a metric label. */
export type DropReason = 'unasked' | 'elsewhere'
export const DROP_REASONS: readonly DropReason[] = ['unasked', 'elsewhere']

export interface InterestStreamOptions {
  homeserver: string
  url: string
  /** what this stream asks the homeserver for: one-user filters, fixed for its life */
  filters: readonly Filter[]
  ingest: RelayIngest
  idleMs: number
  backoff: { baseMs: number; maxMs: number }
  /** whether an event of `user` at `originSeq` on this homeserver belongs in the log: the user's record names it */
  accepts(user: string, originSeq: number): boolean
  dropped(reason: DropReason): void
  /** this stream's cursors moved (a commit of its events, or of positions scanned) */
  progressed(): void
  log: { warn(o: object, msg: string): void }
}

/**
 * One upstream `/subscribe` stream to one homeserver, asking for a fixed set of followed users'
 * filters. It starts from the lowest stored cursor of its filters (a filter new to the relay is
 * at 0: that user's history from the homeserver's floor, then live) and moves every one of them
 * with what it commits; the ingest skips what another cursor covering the event has passed, so
 * a filter added later never skips what an earlier, narrower one scanned, and nothing lands
 * twice. Its filters change only by replacing the stream (HomeserverStreams).
 */
export class InterestStream {
  readonly filters: readonly Filter[]
  readonly #opts: InterestStreamOptions
  readonly #attempt: Omit<Attempt, 'failed'>
  readonly #loop: RetryLoop

  constructor(options: InterestStreamOptions, id: number) {
    this.#opts = options
    this.filters = options.filters
    const book = options.ingest.book
    this.#attempt = {
      upstream: `${options.homeserver} stream ${id}`,
      homeserver: options.homeserver,
      cursors: options.filters.map((f) => book.filterCursor(options.homeserver, f).name),
    }
    this.#loop = new RetryLoop({
      attempt: (signal) => this.#follow({ ...this.#attempt }, signal),
      failed: (fault, reason) => this.#warn(fault, reason),
      backoff: options.backoff,
    })
  }

  get state(): UpstreamState {
    return this.#loop.state
  }

  get lastError(): string | undefined {
    return this.#loop.lastError
  }

  get lag(): number {
    return this.#loop.follower?.lag ?? 0
  }

  /** its filters' cursors' names */
  get cursorNames(): readonly string[] {
    return this.#attempt.cursors!
  }

  /** the lowest of its filters' cursors: where it would start again */
  get cursor(): number {
    return Math.min(...this.cursorNames.map((n) => this.#opts.ingest.book.get(n)?.cursor ?? 0))
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

  #warn(fault: UpstreamFault, reason: string): void {
    this.#opts.log.warn({ homeserver: this.#opts.homeserver, url: this.#opts.url, fault, reason }, 'relay: followed homeserver stream dropped, retrying')
  }

  async #follow(attempt: Attempt, signal: AbortSignal): Promise<void> {
    const { homeserver, url, ingest } = this.#opts
    await pumpStream({
      url,
      homeserver,
      filters: this.filters.map((f) => f.text),
      from: this.cursor,
      idleMs: this.#opts.idleMs,
      backoff: this.#opts.backoff,
      signal,
      opened: (follower) => void (this.#loop.follower = follower),
      state: (s) => this.#loop.following(s),
      retry: (error) => {
        this.#warn(this.#loop.count(error), error.message)
        this.#loop.state = 'failed'
      },
      reset: async (info) => {
        const floor = Number(info.floor)
        if (!Number.isSafeInteger(floor)) throw new UpstreamError('protocol', `the homeserver sent a reset to floor ${info.floor}`)
        this.#opts.log.warn({ homeserver, requested: info.requested, floor: info.floor }, 'relay: a followed homeserver pruned events the relay had not read; going on from its floor')
        await commit(ingest.moveCursor(attempt, floor - 1))
      },
      take: (event) => {
        // what nobody asked of this homeserver, or what its user's record places elsewhere, is not stored
        const drop = !this.filters.some((f) => filterMatches(f, event)) ? 'unasked' : !this.#opts.accepts(event.user, event.originSeq) ? 'elsewhere' : undefined
        if (drop !== undefined) {
          this.#opts.dropped(drop)
          return undefined
        }
        return commit(ingest.add(attempt, event)).then((appended) => {
          if (appended) this.#loop.relayed++
          this.#opts.progressed()
        })
      },
      scanned: (at) => at <= 0 ? undefined : commit(ingest.moveCursor(attempt, at)).then((moved) => void (moved && this.#opts.progressed())),
    })
  }
}

/** A failed commit is the relay's fault, not the homeserver's: counted as such. */
async function commit(done: Promise<boolean>): Promise<boolean> {
  try {
    return await done
  } catch (err) {
    throw new UpstreamError('storage', `the relay could not commit: ${(err as Error).message}`)
  }
}
