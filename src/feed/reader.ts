import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import type { Lease, LogPages, Page, Source } from './pages.js'
import { readsUnder, type CanSee } from './visibility.js'
import type { WireFormat } from './wire.js'

/** What one stream may read: where it starts, and what of the log it may see. */
export interface ReadSpec {
  /** exclusive: every matching event with seq > after is read */
  after: number
  /** the one user whose index may be read instead of the whole log */
  onlyUser?: string
  /** the `/priv/` rule for this stream's viewer: nothing it refuses is handed out or given away */
  canSee: CanSee
  /** the stream's filters, as a predicate over events, for reads of the log */
  accepts: (ev: HearthEvent) => boolean
  /**
   * what live events must pass besides `canSee`, where whoever hands them over already applied
   * the filters (the subscription tables); `accepts` when not given
   */
  acceptsLive?: (ev: HearthEvent) => boolean
}

/** The frame of the event a reader is handing out, taken from its page (shared by every reader of it). */
export interface PageFrame {
  frame(wire: WireFormat): string | Buffer
}

/** Where a reader hands what it reads: a transport frames and writes it. */
export interface ReadSink {
  /** events after `requested` and below `floor` were pruned before they could be read; reading goes on at `floor` */
  reset(requested: number, floor: number): void
  /**
   * The next event the stream may see, in seq order; `at.frame(wire)` is its frame, valid
   * during this call. Returns false to take nothing now (no room): the event is read again
   * on the next step.
   */
  event(ev: HearthEvent, at: PageFrame): boolean
}

/**
 * One stream's reading of the log, with no idea how what it reads is sent: from a cursor, the
 * events its spec lets through, in seq order, a page at a time from the shared `LogPages`;
 * the floor of each read's own snapshot, so a stretch pruned before it was read is announced
 * (`reset`), never skipped silently; the positions it may report without giving anything away
 * (`mark`); and the moment it has caught up with the log (`caughtUp`), at which its transport
 * turns to live events (`takesLive`, `took`) in the same tick.
 *
 * Invariant: `cursor` is the highest seq this reader has dealt with (handed out, or passed
 * over as not for this stream), and every event ≤ cursor that the stream may see was handed
 * out exactly once, in order, except those pruned before they could be read, which a reset
 * announced. `mark` ≤ cursor is a position that gives nothing away: pages of the whole log end
 * where the log says, whoever wrote there; pages of one user's index end on that user's
 * events, and where a page ends, or which of its events a mark could stop at, would tell how
 * many hidden events it held, so a reader of an index marks only the head it reaches (SPEC
 * §6.3: no position lands on, or just after, a private event of that user). A reader that may
 * see nothing private of its one user reads only the public part of the user's index, so its
 * pages, and so whatever its transport writes when, are the same whatever private events lie
 * between them.
 *
 * Reads never return events above `log.head`, and the log raises `head` in the same tick as
 * it announces, so once `caughtUp` every event ≤ head was read and every event > head will be
 * announced; a live event at or below the cursor is refused, which removes any duplicate.
 * Memory: the page being handed out, and the next one read ahead while it is; `pause()` gives
 * the one ahead back, before the transport waits on its client.
 */
export class LogReader implements PageFrame {
  readonly spec: ReadSpec
  readonly #events: EventLog
  readonly #pages: LogPages
  readonly #source: Source
  #cursor: number
  #mark: number
  #ahead: Lease | undefined
  /** the page and index of the event being handed out, for `frame` */
  #page: Page | undefined
  #at = 0
  #ev: HearthEvent | undefined
  #closed = false

  constructor(events: EventLog, pages: LogPages, spec: ReadSpec) {
    this.spec = spec
    this.#events = events
    this.#pages = pages
    const user = spec.onlyUser
    this.#source = user === undefined ? {} : { user, under: readsUnder(spec.canSee) }
    this.#cursor = this.#mark = spec.after
  }

  /** the highest seq dealt with */
  get cursor(): number {
    return this.#cursor
  }

  /** the highest position this stream may report without an event: ≤ cursor, and giving nothing away */
  get mark(): number {
    return this.#mark
  }

  /** Every event up to the log's head was dealt with: read this in the tick the transport turns live. */
  get caughtUp(): boolean {
    return this.#cursor >= this.#events.head
  }

  /**
   * Reads one page after the cursor and hands `sink` what the stream may see of it. Returns
   * true when the sink took everything, false when it stopped (the rest is read again next step).
   */
  async step(sink: ReadSink): Promise<boolean> {
    // what this process knows was pruned is not read (nor served from a page kept since)
    const from = Math.max(this.#cursor, this.#events.floor - 1)
    let lease: Lease
    // the page read ahead is still the right one unless the cursor moved past it
    if (this.#ahead?.page.after === from) {
      lease = this.#ahead
      this.#ahead = undefined
    } else {
      this.pause()
      lease = await this.#pages.lease(this.#source, from)
    }
    try {
      const page = lease.page
      const events = await page.events
      if (this.#closed) return true
      // the floor of the read's own snapshot: what the read misses below it, one reset says
      this.#skipPruned(sink, Math.max(page.floor, from + 1))
      // a full page: read the next one while this one is handed out, if there is room
      if (page.full && page.end! + 1 >= this.#events.floor) this.#ahead = this.#pages.tryLease(this.#source, page.end!)
      const whole = this.#source.user === undefined
      this.#page = page
      for (let i = 0; i < events.length; i++) {
        const ev = events[i]!
        if (ev.seq <= this.#cursor) continue
        if (this.spec.canSee(ev) && this.spec.accepts(ev)) {
          this.#at = i
          this.#ev = ev
          if (!sink.event(ev, this)) return false
          if (this.#closed) return true
        }
        this.#cursor = ev.seq
        if (whole) this.#mark = ev.seq
      }
      // a short page holds every event up to the head it was read under
      if (!page.full) this.#cursor = this.#mark = Math.max(this.#cursor, page.head)
      return true
    } finally {
      this.#page = this.#ev = undefined
      lease.release()
    }
  }

  /** The frame of the event being handed to a sink, from its page. */
  frame(wire: WireFormat): string | Buffer {
    return this.#page!.frameAt(this.#at, this.#ev!, wire, this)
  }

  /** Whether a live event is this stream's next: after the cursor, and one it may see. */
  takesLive(ev: HearthEvent): boolean {
    return !this.#closed && ev.seq > this.#cursor && this.spec.canSee(ev) && (this.spec.acceptsLive ?? this.spec.accepts)(ev)
  }

  /** A live event was handed out. */
  took(seq: number): void {
    this.#cursor = this.#mark = seq
  }

  /** Live and caught up: every event up to the head was dealt with, and that position gives nothing away. */
  reachHead(): void {
    this.#cursor = this.#mark = Math.max(this.#cursor, this.#events.head)
  }

  /** Gives back the page read ahead: nothing is held while the client is waited for. */
  pause(): void {
    this.#ahead?.release()
    this.#ahead = undefined
  }

  /** Stops: the step under way hands out nothing more, and nothing stays held. */
  close(): void {
    this.#closed = true
    this.pause()
  }

  /** Pruning overtook the cursor: go on from the floor, and say so. */
  #skipPruned(sink: ReadSink, floor: number): void {
    if (this.#cursor + 1 >= floor) return
    sink.reset(this.#cursor, floor)
    this.#cursor = floor - 1
    this.#mark = Math.max(this.#mark, this.#cursor)
  }
}
