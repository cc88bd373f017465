import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import type { EventFrames } from './frames.js'
import type { WireFormat } from './wire.js'
import type { LogPages } from './pages.js'
import { LogReader, type PageFrame, type ReadSink, type ReadSpec } from './reader.js'
import type { ReplayWindow } from './replay-window.js'
import { WRITE_OVERHEAD, type SseStream } from './sse.js'
import type { FeedObserver, Phase } from './observer.js'

export interface SubscriberSpec extends ReadSpec {
  /** how this stream's events and signals are framed */
  wire: WireFormat
  /** false: end the stream once caught up */
  live: boolean
  /** end after this many events */
  limit?: number
  /** the secret of the session that lets this stream see `/priv/` events: signing it out ends the stream */
  session?: string
}

/**
 * One SSE stream: a `LogReader` for what it sends, framed by its `WireFormat`, written to its
 * socket with back-pressure. Phases:
 *
 *  1. replay    the reader hands out the log page by page after the cursor; each frame is
 *               queued only while the socket holds less than this stream's share of the
 *               `ReplayWindow` (HIGH_WATER, or less when many streams read the log at once);
 *               otherwise the reader stops, gives its pages back, and once the socket drains
 *               reads on from its cursor. A stretch pruned before it was read becomes
 *               `event: reset` where the wire has one.
 *  2. hand-over once the reader has caught up with `log.head`, become live in that same tick.
 *  3. live      the engine pushes each announced event that the tables match.
 *  4. catch-up  a push that finds the socket backed up is not written; the subscriber
 *               leaves live, waits for the socket to drain, and goes back to phase 1.
 *
 * The reader's invariant (every event ≤ cursor it may see sent exactly once, in order) holds
 * for the stream, and id-only frames report the reader's `mark`, a position that gives nothing
 * away. What this stream writes, and when, depends only on what the reader hands it.
 * Memory: the socket's unsent bytes stay ≤ HIGH_WATER + one frame, and while the log is read
 * ≤ the window's share + one frame. Pages are held only while read and encoded, never while
 * the client is waited for, and count against `LogPages`.
 */
export class Subscriber implements ReadSink {
  readonly spec: SubscriberSpec
  readonly stream: SseStream
  readonly #reader: LogReader
  readonly #window: ReplayWindow
  readonly #onDone: (sub: Subscriber) => void
  readonly #observer: FeedObserver
  live = false
  /** how many times this stream fell out of live because its socket was backed up */
  catchUps = 0
  #sent = 0
  /** the highest position a frame told the client */
  #idSent: number
  #done = false
  /**
   * Frames of the current replay step: text (a lone reader's frames, id and reset frames)
   * joined into one string as it comes, and a page's shared Buffers kept as they are, so that
   * streams reading the same page do not each copy its bytes. `#text` is the run of text after
   * the last Buffer; `#parts` what came before it, in order.
   */
  #parts: (string | Buffer)[] = []
  #text = ''
  #batchBytes = 0
  /** events in the batch, reported as delivered when it is written */
  #batchEvents = 0

  constructor(spec: SubscriberSpec, stream: SseStream, events: EventLog, replays: { pages: LogPages; window: ReplayWindow }, onDone: (sub: Subscriber) => void, observer: FeedObserver) {
    this.spec = spec
    this.stream = stream
    this.#reader = new LogReader(events, replays.pages, spec)
    this.#window = replays.window
    this.#onDone = onDone
    this.#observer = observer
    this.#idSent = spec.after
    stream.onClose(() => this.finish())
  }

  /** the highest seq this stream dealt with */
  get cursor(): number {
    return this.#reader.cursor
  }

  get done(): boolean {
    return this.#done
  }

  get phase(): Phase {
    if (this.live) return 'live'
    return this.catchUps > 0 ? 'catching_up' : 'replay'
  }

  /** Phase 1, then the hand-over. Runs again after every catch-up. */
  async replay(): Promise<void> {
    this.live = false
    this.#window.enter()
    try {
      while (!this.#done) {
        const all = await this.#reader.step(this)
        if (this.#done) return
        this.#markProgress()
        this.#flush()
        if (!all || this.stream.backedUp) {
          this.#reader.pause() // no page is held while the client is waited for
          await this.stream.drained()
          if (this.#done || !all) continue
        }
        if (this.#reader.caughtUp) {
          if (!this.spec.live) return this.finish()
          this.live = true // phase 2: same tick as the check above, so nothing slips between
          return
        }
      }
    } finally {
      this.#reader.pause()
      this.#window.leave()
    }
  }

  /** ReadSink: the reader's next event, queued while the socket has room for it. */
  event(ev: HearthEvent, at: PageFrame): boolean {
    if (this.#full()) return false // the rest waits for the socket, and is read again after
    this.#queue(at.frame(this.spec.wire))
    this.#batchEvents++
    this.#counted(ev)
    return true
  }

  /** ReadSink: pruning overtook the cursor; the stream goes on at the floor, and says so. */
  reset(requested: number, floor: number): void {
    const reset = this.spec.wire.reset(requested, floor)
    if (reset !== undefined) this.#queue(reset)
    this.#idSent = Math.max(this.#idSent, floor - 1)
  }

  /**
   * Phase 3: called by the engine for each matching announced event, in seq order. Returns
   * true when it wrote: the stream is then corked until the engine has pushed the whole group.
   */
  push(ev: HearthEvent, frames: EventFrames): boolean {
    if (!this.live || this.#done || !this.#reader.takesLive(ev)) return false
    if (this.stream.backedUp) {
      // Phase 4: drop out of live; the log still has this event and the catch-up reads it.
      this.live = false
      this.catchUps++
      this.#observer.fellBehind(this.spec.wire.protocol)
      void this.stream.drained().then(() => this.replay()).catch(() => this.finish())
      return false
    }
    this.stream.cork()
    this.stream.write(this.spec.wire.bytes(frames))
    this.#counted(ev)
    this.#reader.took(ev.seq)
    return true
  }

  /** Live streams have dealt with everything up to the head: say so on keepalive. */
  keepalive(): void {
    if (this.#done || !this.live || this.stream.backedUp) return
    this.#reader.reachHead()
    this.#markProgress()
    this.#flush()
    this.stream.write(this.spec.wire.keepalive)
  }

  finish(): void {
    if (this.#done) return
    this.#done = true
    this.live = false
    this.#reader.close()
    this.#flush()
    this.stream.end()
    this.#onDone(this)
  }

  #counted(ev: HearthEvent): void {
    this.#idSent = ev.seq
    this.#sent++
    if (this.spec.limit !== undefined && this.#sent >= this.spec.limit) this.finish()
  }

  /** An id-only frame, so a reconnect skips what was scanned without matching. */
  #markProgress(): void {
    const at = this.#reader.mark
    if (at <= this.#idSent || this.#full()) return
    const mark = this.spec.wire.mark(at)
    if (mark === undefined) return
    this.#queue(mark)
    this.#idSent = at
  }
  /** Counts each part's own write, which the socket holds as unsent bytes too, in `#batchBytes`. */
  #queue(frame: string | Buffer): void {
    if (typeof frame === 'string') {
      if (this.#text === '') this.#batchBytes += WRITE_OVERHEAD
      this.#text += frame
      this.#batchBytes += Buffer.byteLength(frame)
      return
    }
    if (this.#text !== '') this.#parts.push(this.#text)
    this.#text = ''
    this.#parts.push(frame)
    this.#batchBytes += WRITE_OVERHEAD + frame.length
  }

  /** The socket and this step's frames hold this stream's share of the window or more: no more frames now. */
  #full(): boolean {
    return this.stream.buffered + this.#batchBytes >= this.#window.share()
  }

  /**
   * Writes the batch: a response corks its socket on a write until the next tick, so its parts
   * leave together in one system call, and the socket holds on to the Buffers rather than
   * copying them.
   */
  #flush(): void {
    if (this.#batchBytes === 0) return
    for (const part of this.#parts) this.stream.write(part)
    if (this.#text !== '') this.stream.write(this.#text)
    if (this.#batchEvents > 0 && !this.stream.closed) this.#observer.delivered(this.spec.wire.protocol, 'replay', this.#batchEvents)
    this.#parts.length = 0
    this.#text = ''
    this.#batchBytes = 0
    this.#batchEvents = 0
  }
}
