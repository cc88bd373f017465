import type { Follower } from 'hearth-homeserver-client/follow'
import { shortLine } from 'hearth-homeserver-client/stream'
import { backoffDelay, sleep } from 'hearth-homeserver-client/backoff'
import { faultOf, UPSTREAM_FAULTS, type UpstreamFault } from './upstream-fetch.js'

/** `failed`: the last attempt failed; the next one waits its backoff. */
export type UpstreamState = 'connecting' | 'catching-up' | 'live' | 'failed'

/**
 * The life of one thing the relay follows (an operator's upstream, or a stream for followed
 * users): attempts, one after another until stopped, each ended by a failure that is counted
 * by fault and waits a backoff (full jitter) before the next. An attempt that relayed
 * something was a good one: the next wait starts short again.
 */
export class RetryLoop {
  readonly #attempt: (signal: AbortSignal) => Promise<void>
  readonly #failed: (fault: UpstreamFault, reason: string) => void
  readonly #backoff: { baseMs: number; maxMs: number }
  readonly #stop = new AbortController()
  readonly #faults = new Map<UpstreamFault, number>(UPSTREAM_FAULTS.map((f) => [f, 0]))
  #running: Promise<void> | undefined
  state: UpstreamState = 'connecting'
  /** the follower of the current attempt, once it has one */
  follower: Follower | undefined
  lastError: string | undefined
  /** events relayed by this process: an attempt that adds to it was a good one */
  relayed = 0

  constructor(options: {
    attempt: (signal: AbortSignal) => Promise<void>
    /** after it is counted: for the log */
    failed: (fault: UpstreamFault, reason: string) => void
    backoff?: { baseMs: number; maxMs: number }
  }) {
    this.#attempt = options.attempt
    this.#failed = options.failed
    this.#backoff = options.backoff ?? { baseMs: 1000, maxMs: 30_000 }
  }

  faults(): ReadonlyMap<UpstreamFault, number> {
    return this.#faults
  }

  /** Counts a failure by its fault; `/info` shows it until the next attempt is live. */
  count(err: unknown): UpstreamFault {
    const fault = faultOf(err)
    this.#faults.set(fault, this.#faults.get(fault)! + 1)
    this.lastError = shortLine((err as Error).message)
    return fault
  }

  /** The follower's own state; once live, what failed before is over. */
  following(s: Exclude<UpstreamState, 'failed'>): void {
    this.state = s
    if (s === 'live') this.lastError = undefined
  }

  start(): void {
    this.#running ??= this.#run()
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    await this.follower?.close()
    await this.#running
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal
    let attempt = 0
    while (!signal.aborted) {
      const before = this.relayed
      try {
        await this.#attempt(signal)
      } catch (err) {
        if (signal.aborted) break
        this.#failed(this.count(err), this.lastError!)
      }
      if (signal.aborted) break
      attempt = this.relayed > before ? 0 : attempt + 1
      this.state = 'failed'
      await sleep(backoffDelay({ ...this.#backoff, jitter: 1 }, attempt), signal)
    }
  }
}
