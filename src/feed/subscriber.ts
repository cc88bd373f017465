import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/log.js'
import type { EventFrames } from './frames.js'
import type { WireFormat } from './wire.js'
import type { Lease, LogPages, Source } from './pages.js'
import type { ReplayWindow } from './replay-window.js'
import { WRITE_OVERHEAD, type SseStream } from './sse.js'
import type { FeedObserver, Phase } from './observer.js'
import { readsUnder, type CanSee } from './visibility.js'

export interface SubscriberSpec {
  /** how this stream's events and signals are framed */
  wire: WireFormat
  /** exclusive: every matching event with seq > after is sent */
  after: number
  /** false: end the stream once caught up */
  live: boolean
  /** end after this many events */
  limit?: number
  /** the one user whose index replays may read instead of the whole log */
  onlyUser?: string
  /** the `/priv/` rule for this stream's viewer: nothing it refuses is sent or given away */
  canSee: CanSee
  /** the secret of the session that lets this stream see `/priv/` events: signing it out ends the stream */
  session?: string
  /** the stream's filters, as a predicate over events, for replays */
  accepts: (ev: HearthEvent) => boolean
  /**
   * what live events must pass besides `canSee` and the tables' match (which already applied
   * the filters); `accepts` when not given
   */
  acceptsLive?: (ev: HearthEvent) => boolean
}

/**
 * One stream's life. Phases:
 *
 *  1. replay    read the log (or the user's index) page by page after `cursor`, sending what
 *               matches, the next full page read ahead while one is sent; pages come from
 *               `LogPages`, shared with other streams and bounded in bytes across them. A
 *               frame is queued only while the socket holds less than this stream's share of
 *               the `ReplayWindow` (HIGH_WATER, or less when many streams read the log at
 *               once); otherwise the pages are given back, and once the socket drains the
 *               page after `cursor` is asked for again. A cursor found below the log's floor (pruned meanwhile) jumps
 *               to the floor, announced by `event: reset`.
 *  2. hand-over when a read finds nothing past `log.head`, become live in that same tick.
 *  3. live      the engine pushes each announced event that the tables match.
 *  4. catch-up  a push that finds the socket backed up is not written; the subscriber
 *               leaves live, waits for the socket to drain, and goes back to phase 1.
 *
 * Invariant: `cursor` is the highest seq this stream has dealt with (sent, or passed over
 * as not matching), and every event ≤ cursor that matches was sent exactly once, in order
 * (except events pruned before they could be read, which the reset frame announces).
 * Id-only frames report `#mark` ≤ cursor: a position that gives nothing away. Pages of the
 * whole log end where the log says, whoever wrote there. Pages of one user's index end on
 * that user's events, and where a page ends, or which of its events a mark could stop at,
 * would tell how many hidden events it held; so a replay of an index marks only the head it
 * reaches (SPEC §6.3: no id frame lands on, or just after, a private event of that user).
 * Replay reads never return events above `log.head`, and the log raises `head` in the same
 * tick as it pushes, so at the hand-over every event ≤ head was read and every event > head
 * will be pushed. A push with seq ≤ cursor is ignored, which removes any duplicate.
 * A page brings the floor of its read's own snapshot of storage (Store.readLog), and pruning
 * moves the floor before it deletes, so checking that floor lets no read skip a pruned event
 * silently, on any engine and whichever process pruned. A stream that may see nothing private
 * of its one user reads only the public part of the user's index, so its pages, and so its
 * writes, hold the same visible events whatever private ones lie between them.
 * Memory: the socket's unsent bytes stay ≤ HIGH_WATER + one frame, and while the log is read
 * ≤ the window's share + one frame. Pages are held only while read and encoded, never while
 * the client is waited for, and count against `LogPages`.
 */
export class Subscriber {
  readonly spec: SubscriberSpec
  readonly stream: SseStream
  readonly #log: EventLog
  readonly #pages: LogPages
  readonly #window: ReplayWindow
  readonly #onDone: (sub: Subscriber) => void
  readonly #observer: FeedObserver
  cursor: number
  live = false
  /** how many times this stream fell out of live because its socket was backed up */
  catchUps = 0
  #sent = 0
  /** the highest position an id-only frame may report */
  #mark: number
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

  constructor(spec: SubscriberSpec, stream: SseStream, log: EventLog, replays: { pages: LogPages; window: ReplayWindow }, onDone: (sub: Subscriber) => void, observer: FeedObserver) {
    this.spec = spec
    this.stream = stream
    this.#log = log
    this.#pages = replays.pages
    this.#window = replays.window
    this.#onDone = onDone
    this.#observer = observer
    this.cursor = spec.after
    this.#mark = spec.after
    this.#idSent = spec.after
    stream.onClose(() => this.finish())
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
    const user = this.spec.onlyUser
    const source: Source = user === undefined ? {} : { user, under: readsUnder(this.spec.canSee) }
    let lease: Lease | undefined
    let ahead: Lease | undefined
    this.#window.enter()
    try {
      while (!this.#done) {
        // what this process knows was pruned is not read (nor served from a page kept since)
        const from = Math.max(this.cursor, this.#log.floor - 1)
        // the page read ahead (below) is still the right one unless the cursor moved past it
        if (ahead?.page.after === from) {
          lease = ahead
          ahead = undefined
        } else {
          ahead?.release()
          ahead = undefined
          lease = await this.#pages.lease(source, from)
        }
        const page = lease.page
        const events = await page.events
        if (this.#done) return
        // the floor of the read's own snapshot: what the read misses below it, one reset says
        this.#skipPruned(Math.max(page.floor, from + 1))
        // A full page: read the next one while this one is encoded and written, if there is room.
        if (page.full && page.end! + 1 >= this.#log.floor) ahead = this.#pages.tryLease(source, page.end!)
        let stopped = false
        for (let i = 0; i < events.length; i++) {
          const ev = events[i]!
          if (ev.seq <= this.cursor) continue
          if (this.spec.canSee(ev) && this.spec.accepts(ev)) {
            if (this.#full()) {
              stopped = true // the rest waits for the socket, and is read again after
              break
            }
            this.#send(page.frameAt(i, ev, this.spec.wire, this), ev)
            if (this.#done) return
          }
          this.cursor = ev.seq
          if (user === undefined) this.#mark = ev.seq
        }
        lease.release()
        lease = undefined
        // A short page holds every event up to the head it was read under.
        if (!stopped && !page.full) this.cursor = this.#mark = Math.max(this.cursor, page.head)
        this.#markProgress()
        this.#flush()
        if (stopped || this.stream.backedUp) {
          ahead?.release() // no page is held while the client is waited for
          ahead = undefined
          await this.stream.drained()
          if (this.#done || stopped) continue
        }
        if (this.cursor >= this.#log.head) {
          if (!this.spec.live) return this.finish()
          this.live = true // phase 2: same tick as the check above, so nothing slips between
          return
        }
      }
    } finally {
      lease?.release()
      ahead?.release()
      this.#window.leave()
    }
  }

  /**
   * Phase 3: called by the engine for each matching announced event, in seq order. Returns
   * true when it wrote: the stream is then corked until the engine has pushed the whole group.
   */
  push(ev: HearthEvent, frames: EventFrames): boolean {
    if (!this.live || this.#done || ev.seq <= this.cursor) return false
    if (!this.spec.canSee(ev) || !(this.spec.acceptsLive ?? this.spec.accepts)(ev)) return false
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
    this.cursor = this.#mark = ev.seq
    return true
  }

  /** Live streams have dealt with everything up to the head: say so on keepalive. */
  keepalive(): void {
    if (this.#done || !this.live || this.stream.backedUp) return
    this.cursor = this.#mark = Math.max(this.cursor, this.#log.head)
    this.#markProgress()
    this.#flush()
    this.stream.write(this.spec.wire.keepalive)
  }

  finish(): void {
    if (this.#done) return
    this.#done = true
    this.live = false
    this.#flush()
    this.stream.end()
    this.#onDone(this)
  }

  /** Replay: queue an event's frame, from the page every stream reading it shares. */
  #send(frame: string | Buffer, ev: HearthEvent): void {
    this.#queue(frame)
    this.#batchEvents++
    this.#counted(ev)
  }

  #counted(ev: HearthEvent): void {
    this.#idSent = ev.seq
    this.#sent++
    if (this.spec.limit !== undefined && this.#sent >= this.spec.limit) this.finish()
  }

  /** Pruning overtook the cursor: continue from the floor and say so. */
  #skipPruned(floor: number): void {
    if (this.cursor + 1 >= floor) return
    const reset = this.spec.wire.reset(this.cursor, floor)
    if (reset !== undefined) this.#queue(reset)
    this.cursor = floor - 1
    this.#mark = Math.max(this.#mark, this.cursor)
    this.#idSent = Math.max(this.#idSent, this.cursor)
  }

  /** An id-only frame, so a reconnect skips what was scanned without matching. */
  #markProgress(): void {
    if (this.#mark <= this.#idSent || this.#full()) return
    const mark = this.spec.wire.mark(this.#mark)
    if (mark === undefined) return
    this.#queue(mark)
    this.#idSent = this.#mark
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
    return this.stream.buffered + this.#batchBytes >= this.#window.share(this.stream.refusesAt)
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
