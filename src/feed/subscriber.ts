import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/log.js'
import { EventFrames, idFrame, resetFrame } from './frames.js'
import type { SseStream } from './sse.js'
import type { FeedObserver, Phase } from './observer.js'
import type { CanSee } from './visibility.js'

/** Events read from the log per step of a replay or catch-up. */
export const PAGE = 256

export type Protocol = 'subscribe' | 'events-stream'

interface Read {
  after: number
  head: number
  pending: Promise<HearthEvent[]>
}

export interface SubscriberSpec {
  protocol: Protocol
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
 *               matches, the next full page read ahead while one is sent; a frame is queued
 *               only while the socket holds at most HIGH_WATER bytes, otherwise the page waits
 *               for it to drain. A cursor found below the log's floor (pruned meanwhile) jumps
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
 * The floor is checked in the tick a read starts, which is when LevelDB takes the read's
 * snapshot, and pruning moves the floor before it deletes, so no read skips a pruned event
 * silently.
 * Memory: the socket's unsent bytes stay ≤ HIGH_WATER + one frame, plus at most two pages.
 */
export class Subscriber {
  readonly spec: SubscriberSpec
  readonly stream: SseStream
  readonly #log: EventLog
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
  /** frames of the current replay step, written as one chunk */
  #batch = ''
  #batchBytes = 0
  /** events in `#batch`, reported as delivered when it is written */
  #batchEvents = 0

  constructor(spec: SubscriberSpec, stream: SseStream, log: EventLog, onDone: (sub: Subscriber) => void, observer: FeedObserver) {
    this.spec = spec
    this.stream = stream
    this.#log = log
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
    let ahead: Read | undefined
    while (!this.#done) {
      // the page read ahead (below) is still the right one unless the cursor moved past it
      if (ahead === undefined || ahead.after !== this.cursor) {
        this.#skipPruned()
        ahead = this.#read(this.cursor)
      }
      const { head, pending } = ahead
      const page = await pending
      // A full page: read the next one while this one is encoded and written. The floor is
      // checked as for any read, in the tick the read starts.
      const last = page.length === PAGE ? page[PAGE - 1]!.seq : undefined
      ahead = last !== undefined && last + 1 >= this.#log.floor ? this.#read(last) : undefined
      for (const ev of page) {
        if (this.#done) return
        if (ev.seq <= this.cursor) continue
        if (this.spec.canSee(ev) && this.spec.accepts(ev)) {
          if (this.#full()) await this.#drain()
          if (this.#done) return
          this.#send(ev)
        }
        this.cursor = ev.seq
        if (this.spec.onlyUser === undefined) this.#mark = ev.seq
      }
      // A short page holds every event up to the head it was read under.
      if (page.length < PAGE) this.cursor = this.#mark = Math.max(this.cursor, head)
      if (this.#done) return
      this.#markProgress()
      this.#flush()
      if (this.stream.backedUp) await this.stream.drained()
      if (this.#done) return
      if (this.cursor >= this.#log.head) {
        if (!this.spec.live) return this.finish()
        this.live = true // phase 2: same tick as the check above, so nothing slips between
        return
      }
    }
  }

  /** Starts reading the page after `after`; `head` is the bound that read works under. */
  #read(after: number): Read {
    const head = this.#log.head
    const pending = this.spec.onlyUser ? this.#log.readUser(this.spec.onlyUser, after, PAGE) : this.#log.read(after, PAGE)
    pending.catch(() => {}) // a read ahead may be dropped; whoever awaits it still sees the error
    return { after, head, pending }
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
      this.#observer.fellBehind(this.spec.protocol)
      void this.stream.drained().then(() => this.replay()).catch(() => this.finish())
      return false
    }
    this.stream.cork()
    this.stream.write(this.spec.protocol === 'subscribe' ? frames.subscribe : frames.eventsStream)
    this.#counted(ev)
    this.cursor = this.#mark = ev.seq
    return true
  }

  /** Live streams have dealt with everything up to the head: say so on keepalive. */
  keepalive(frame: Buffer): void {
    if (this.#done || !this.live || this.stream.backedUp) return
    this.cursor = this.#mark = Math.max(this.cursor, this.#log.head)
    this.#markProgress()
    this.#flush()
    this.stream.write(frame)
  }

  finish(): void {
    if (this.#done) return
    this.#done = true
    this.live = false
    this.#flush()
    this.stream.end()
    this.#onDone(this)
  }

  /** Replay: queue the event's frame (read from the log, so encoded for this stream only). */
  #send(ev: HearthEvent): void {
    const frames = new EventFrames(ev)
    this.#queue(this.spec.protocol === 'subscribe' ? frames.subscribeText : frames.eventsStreamText)
    this.#batchEvents++
    this.#counted(ev)
  }

  #counted(ev: HearthEvent): void {
    this.#idSent = ev.seq
    this.#sent++
    if (this.spec.limit !== undefined && this.#sent >= this.spec.limit) this.finish()
  }

  /** Pruning overtook the cursor: continue from the floor and say so. */
  #skipPruned(): void {
    const floor = this.#log.floor
    if (this.cursor + 1 >= floor) return
    if (this.spec.protocol === 'subscribe') this.#queue(resetFrame(this.cursor, floor))
    this.cursor = floor - 1
    this.#mark = Math.max(this.#mark, this.cursor)
    this.#idSent = Math.max(this.#idSent, this.cursor)
  }

  /** An id-only frame, so a reconnect skips what was scanned without matching. */
  #markProgress(): void {
    if (this.spec.protocol !== 'subscribe' || this.#mark <= this.#idSent || this.#full()) return
    this.#queue(idFrame(this.#mark))
    this.#idSent = this.#mark
  }

  #queue(frame: string): void {
    this.#batch += frame
    this.#batchBytes += Buffer.byteLength(frame)
  }

  /** The socket and this step's frames hold HIGH_WATER bytes or more: no more frames now. */
  #full(): boolean {
    return this.stream.buffered + this.#batchBytes >= this.stream.highWater
  }

  #flush(): void {
    if (this.#batchBytes === 0) return
    this.stream.write(this.#batch)
    if (this.#batchEvents > 0 && !this.stream.closed) this.#observer.delivered(this.spec.protocol, 'replay', this.#batchEvents)
    this.#batch = ''
    this.#batchBytes = 0
    this.#batchEvents = 0
  }

  async #drain(): Promise<void> {
    this.#flush()
    await this.stream.drained()
  }
}
