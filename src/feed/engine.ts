import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import type { Filter } from '../subscriptions/filter.js'
import { SubscriptionTables } from '../subscriptions/tables.js'
import { framesOf } from './frames.js'
import { LogPages, PAGE_BYTES_HELD } from './pages.js'
import { LogReader, type ReadSpec } from './reader.js'
import { pollPage, type PollPage } from './poll.js'
import type { CanSee } from './visibility.js'
import { ReplayWindow } from './replay-window.js'
import { replayReverse, type ReverseSpec } from './reverse.js'
import { SseStream, type WriteTally } from './sse.js'
import { Subscriber, type SubscriberSpec } from './subscriber.js'
import { EVENTS_STREAM, PROTOCOLS, SUBSCRIBE, type Protocol } from './wire.js'
import { HeldViews, SnapshotStream } from './snapshot.js'
import type { SnapshotToken } from './snapshot-frames.js'
import { NO_OBSERVER, type FeedObserver, type FeedStats, type Phase } from './observer.js'
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
  readonly #events: EventLog
  /** the pages every forward replay and catch-up reads, bounded across streams */
  readonly #pages: LogPages
  /** the unsent bytes those replays and catch-ups may hold, shared out between them */
  readonly #window = new ReplayWindow()
  readonly #tables = new SubscriptionTables<Subscriber>()
  readonly #subs = new Set<Subscriber>()
  /** newest-first replays: never live, but ended on stop like the rest */
  readonly #reverse = new Set<SseStream>()
  /** streams sending their snapshot, before they follow the log, with the session that lets them see `/priv/` files */
  readonly #snapshots = new Map<SseStream, string | undefined>()
  /** the read views snapshots hold across pages */
  readonly #heldViews: HeldViews
  readonly #timer: NodeJS.Timeout
  readonly #unlisten: () => void
  readonly #observer: FeedObserver
  /** writes handed to sockets since the start, by protocol */
  readonly #writes = Object.fromEntries(PROTOCOLS.map((p) => [p, { writes: 0 }])) as Record<Protocol, WriteTally>
  #stopped = false

  constructor(events: EventLog, settings: { keepaliveMs: number; snapshotViews?: number }, observer: FeedObserver = NO_OBSERVER) {
    const { keepaliveMs } = settings
    this.#events = events
    this.#heldViews = new HeldViews(settings.snapshotViews)
    // the pool's readers are the replays and catch-ups in the window; a consumer's run or a
    // snapshot's events read pages without counting, so alongside one replay they share less
    this.#pages = new LogPages(events, PAGE_BYTES_HELD, () => this.#window.streams)
    this.#observer = observer
    this.#unlisten = events.onAppend((events) => this.#announce(events))
    this.#timer = setInterval(() => this.#keepalive(), keepaliveMs)
    this.#timer.unref()
  }

  /** open streams: forward, reverse and snapshots */
  get size(): number {
    return this.#subs.size + this.#reverse.size + this.#snapshots.size
  }

  /** the open forward streams, for inspection */
  subscribers(): IterableIterator<Subscriber> {
    return this.#subs.values()
  }

  /** Open streams by protocol and phase, the bytes they hold unsent, and the writes made so far. */
  stats(): FeedStats {
    const counts = new Map<string, { protocol: Protocol; phase: Phase; count: number }>()
    const count = (protocol: Protocol, phase: Phase) => {
      const key = `${protocol} ${phase}`
      const entry = counts.get(key) ?? counts.set(key, { protocol, phase, count: 0 }).get(key)!
      entry.count++
    }
    let unsentBytes = 0
    for (const sub of this.#subs) {
      count(sub.spec.wire.protocol, sub.phase)
      unsentBytes += sub.stream.buffered
    }
    for (const stream of this.#reverse) {
      count(EVENTS_STREAM.protocol, 'replay')
      unsentBytes += stream.buffered
    }
    for (const stream of this.#snapshots.keys()) {
      count(SUBSCRIBE.protocol, 'snapshot')
      unsentBytes += stream.buffered
    }
    const writes = Object.fromEntries(PROTOCOLS.map((p) => [p, this.#writes[p].writes])) as Record<Protocol, number>
    return { streams: [...counts.values()], unsentBytes, pages: this.#pages.stats(), writes }
  }

  /** Starts a stream on `res`: headers now, then replay (if any), then live. */
  open(res: ServerResponse, opts: OpenOptions): Subscriber {
    const stream = new SseStream(res, opts.headers, this.#writes[opts.wire.protocol])
    if (opts.wire.opening !== undefined) stream.write(opts.wire.opening)
    return this.#follow(stream, opts)
  }

  /**
   * `/subscribe?snapshot=true`: headers now, then the files (SnapshotStream), then the stream
   * goes on as `open`'s does, from the position the snapshot reached.
   */
  openSnapshot(res: ServerResponse, opts: OpenOptions & { resume?: SnapshotToken }): SseStream {
    const stream = new SseStream(res, opts.headers, this.#writes[opts.wire.protocol])
    if (opts.wire.opening !== undefined) stream.write(opts.wire.opening)
    if (this.#stopped) stream.end()
    if (stream.closed) return stream
    this.#snapshots.set(stream, opts.session)
    const snapshot = new SnapshotStream(this.#events, this.#pages, stream, opts, this.#heldViews)
    void snapshot.run().then(
      (at) => {
        this.#snapshots.delete(stream)
        if (at === undefined || stream.closed) return stream.end()
        this.#follow(stream, { ...opts, after: at })
      },
      () => {
        this.#snapshots.delete(stream)
        stream.end()
      },
    )
    return stream
  }

  #follow(stream: SseStream, opts: OpenOptions): Subscriber {
    const sub = new Subscriber(opts, stream, this.#events, { pages: this.#pages, window: this.#window }, (s) => this.#forget(s), this.#observer)
    if (this.#stopped) sub.finish()
    if (sub.done) return sub // the client left before its stream started
    this.#subs.add(sub)
    this.#tables.add(sub, opts.filters)
    void sub.replay().catch(() => sub.finish())
    return sub
  }

  /** A reader of the log on the shared pages, for a transport of its own (src/consumers). */
  reader(spec: ReadSpec): LogReader {
    return new LogReader(this.#events, this.#pages, spec)
  }

  /** `/events/`: one page of the polling feed, read through the log reader and the shared pages. */
  poll(after: number, limit: number, canSee: CanSee): Promise<PollPage> {
    return pollPage(this.#events, this.#pages, after, limit, canSee)
  }

  /** `/events-stream?reverse=true`: newest first down to the floor, then the end. */
  openReverse(res: ServerResponse, headers: Headers, spec: ReverseSpec): SseStream {
    const stream = new SseStream(res, headers, this.#writes[EVENTS_STREAM.protocol])
    if (this.#stopped) stream.end()
    if (stream.closed || this.#stopped) return stream
    this.#reverse.add(stream)
    stream.onClose(() => this.#reverse.delete(stream))
    void replayReverse(this.#events, stream, spec, this.#observer).catch(() => stream.end())
    return stream
  }

  /**
   * Ends every stream that sees `/priv/` events through the session `secret`: called when it
   * signs out, in this process or another. A client that reconnects gets public events only.
   */
  endSession(secret: string): void {
    for (const sub of [...this.#subs]) if (sub.spec.session === secret) sub.finish()
    for (const [stream, session] of [...this.#snapshots]) if (session === secret) stream.end()
  }

  /** The sessions that open streams see `/priv/` events through. */
  privateSessions(): Set<string> {
    const out = new Set<string>()
    for (const sub of this.#subs) if (sub.spec.session !== undefined) out.add(sub.spec.session)
    for (const session of this.#snapshots.values()) if (session !== undefined) out.add(session)
    return out
  }

  /** Ends every stream (clients reconnect with their last id) and stops listening. */
  stop(): void {
    this.#stopped = true
    clearInterval(this.#timer)
    this.#unlisten()
    for (const sub of [...this.#subs]) sub.finish()
    for (const stream of [...this.#reverse, ...this.#snapshots.keys()]) stream.end()
  }

  /**
   * One commit's events: each subscriber's frames of the group go out in one write. Frames are
   * not held back for later groups: the writer already gathers into one group what arrives
   * during a commit, and the next group comes a commit's time later, longer than a hold of a
   * few milliseconds could bridge (bench/fanout-cpu.ts measures deliveries per write).
   */
  #announce(events: readonly HearthEvent[]): void {
    const written = new Set<Subscriber>()
    const delivered = new Map<Protocol, number>()
    for (const ev of events) {
      const subs = this.#tables.match(ev)
      if (subs.size === 0) continue
      const frames = framesOf(ev)
      for (const sub of subs) {
        if (!sub.push(ev, frames)) continue
        written.add(sub)
        const protocol = sub.spec.wire.protocol
        delivered.set(protocol, (delivered.get(protocol) ?? 0) + 1)
      }
    }
    for (const sub of written) sub.stream.uncork()
    for (const [protocol, n] of delivered) this.#observer.delivered(protocol, 'live', n)
  }

  #keepalive(): void {
    for (const sub of this.#subs) sub.keepalive()
  }

  #forget(sub: Subscriber): void {
    this.#subs.delete(sub)
    this.#tables.remove(sub)
  }
}
