import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/log.js'
import type { Filter } from '../subscriptions/filter.js'
import { SubscriptionTables } from '../subscriptions/tables.js'
import { KEEPALIVE_FRAME, RETRY_FRAME, UPSTREAM_KEEPALIVE_FRAME, resetFrame } from './frames.js'
import { SseStream } from './sse.js'
import { Subscriber, type SubscriberSpec } from './subscriber.js'
import type { ServerResponse } from 'node:http'

export interface OpenOptions extends SubscriberSpec {
  filters: readonly Filter[]
  /** the cursor the client asked for, when it was below the floor */
  reset?: { requested: bigint; floor: number }
  headers: Record<string, string | number | string[]>
}

/**
 * The feed engine: the live subscription tables, every open stream, and the one listener
 * on the log. Each announced event is matched once against the tables (cost: the depth of
 * its path), and each matching live subscriber is handed the same pre-encoded frame.
 */
export class FeedEngine {
  readonly #log: EventLog
  readonly #tables = new SubscriptionTables<Subscriber>()
  readonly #subs = new Set<Subscriber>()
  readonly #timer: NodeJS.Timeout
  readonly #unlisten: () => void

  constructor(log: EventLog, keepaliveMs: number) {
    this.#log = log
    this.#unlisten = log.onAppend((events) => this.#announce(events))
    this.#timer = setInterval(() => this.#keepalive(), keepaliveMs)
    this.#timer.unref()
  }

  get size(): number {
    return this.#subs.size
  }

  /** Starts a stream on `res`: headers now, then replay (if any), then live. */
  open(res: ServerResponse, opts: OpenOptions): Subscriber {
    const stream = new SseStream(res, opts.headers)
    if (opts.protocol === 'subscribe') stream.write(RETRY_FRAME)
    if (opts.reset) stream.write(resetFrame(opts.reset.requested, opts.reset.floor))
    const sub = new Subscriber(opts, stream, this.#log, (s) => this.#forget(s))
    this.#subs.add(sub)
    if (sub.done) return sub
    this.#tables.add(sub, opts.filters)
    void sub.replay().catch(() => sub.finish())
    return sub
  }

  /** Ends every stream (clients reconnect with their last id) and stops listening. */
  stop(): void {
    clearInterval(this.#timer)
    this.#unlisten()
    for (const sub of [...this.#subs]) sub.finish()
  }

  #announce(events: readonly HearthEvent[]): void {
    for (const ev of events) {
      for (const sub of this.#tables.match(ev)) sub.push(ev)
    }
  }

  #keepalive(): void {
    for (const sub of this.#subs) {
      sub.keepalive(sub.spec.protocol === 'subscribe' ? KEEPALIVE_FRAME : UPSTREAM_KEEPALIVE_FRAME)
    }
  }

  #forget(sub: Subscriber): void {
    this.#subs.delete(sub)
    this.#tables.remove(sub)
  }
}
