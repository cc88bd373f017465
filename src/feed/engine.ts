import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/log.js'
import type { Filter } from '../subscriptions/filter.js'
import { SubscriptionTables } from '../subscriptions/tables.js'
import { KEEPALIVE_FRAME, RETRY_FRAME, UPSTREAM_KEEPALIVE_FRAME, framesOf } from './frames.js'
import { replayReverse, type ReverseSpec } from './reverse.js'
import { SseStream } from './sse.js'
import { Subscriber, type SubscriberSpec } from './subscriber.js'
import type { ServerResponse } from 'node:http'

export type Headers = Record<string, string | number | string[]>

export interface OpenOptions extends SubscriberSpec {
  filters: readonly Filter[]
  headers: Headers
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
  /** newest-first replays: never live, but ended on stop like the rest */
  readonly #reverse = new Set<SseStream>()
  readonly #timer: NodeJS.Timeout
  readonly #unlisten: () => void
  #stopped = false

  constructor(log: EventLog, keepaliveMs: number) {
    this.#log = log
    this.#unlisten = log.onAppend((events) => this.#announce(events))
    this.#timer = setInterval(() => this.#keepalive(), keepaliveMs)
    this.#timer.unref()
  }

  /** open streams, forward and reverse */
  get size(): number {
    return this.#subs.size + this.#reverse.size
  }

  /** the open forward streams, for inspection */
  subscribers(): IterableIterator<Subscriber> {
    return this.#subs.values()
  }

  /** Starts a stream on `res`: headers now, then replay (if any), then live. */
  open(res: ServerResponse, opts: OpenOptions): Subscriber {
    const stream = new SseStream(res, opts.headers)
    if (opts.protocol === 'subscribe') stream.write(RETRY_FRAME)
    const sub = new Subscriber(opts, stream, this.#log, (s) => this.#forget(s))
    if (this.#stopped) sub.finish()
    if (sub.done) return sub // the client left before its stream started
    this.#subs.add(sub)
    this.#tables.add(sub, opts.filters)
    void sub.replay().catch(() => sub.finish())
    return sub
  }

  /** `/events-stream?reverse=true`: newest first down to the floor, then the end. */
  openReverse(res: ServerResponse, headers: Headers, spec: ReverseSpec): SseStream {
    const stream = new SseStream(res, headers)
    if (this.#stopped) stream.end()
    if (stream.closed || this.#stopped) return stream
    this.#reverse.add(stream)
    stream.onClose(() => this.#reverse.delete(stream))
    void replayReverse(this.#log, stream, spec).catch(() => stream.end())
    return stream
  }

  /** Ends every stream (clients reconnect with their last id) and stops listening. */
  stop(): void {
    this.#stopped = true
    clearInterval(this.#timer)
    this.#unlisten()
    for (const sub of [...this.#subs]) sub.finish()
    for (const stream of [...this.#reverse]) stream.end()
  }

  /** One commit's events: each subscriber's frames of the group go out in one write. */
  #announce(events: readonly HearthEvent[]): void {
    const written = new Set<Subscriber>()
    for (const ev of events) {
      const subs = this.#tables.match(ev)
      if (subs.size === 0) continue
      const frames = framesOf(ev)
      for (const sub of subs) if (sub.push(ev, frames)) written.add(sub)
    }
    for (const sub of written) sub.stream.uncork()
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
