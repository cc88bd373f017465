import type { HearthEvent } from '../events/event.js'
import { isPrivate } from '../events/event.js'
import type { EventLog } from '../events/log.js'
import { framesOf, idFrame } from './frames.js'
import type { SseStream } from './sse.js'

/** Events read from the log per step of a replay or catch-up. */
export const PAGE = 256

export type Protocol = 'subscribe' | 'events-stream'

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
  /** the one user whose `/priv/` events this stream may see (its owner's session) */
  privUser?: string
  /** the stream's filters, as a predicate over events (the tables do the same for live) */
  accepts: (ev: HearthEvent) => boolean
}

/**
 * One stream's life. Phases:
 *
 *  1. replay    read the log (or the user's index) page by page from `cursor`, sending what
 *               matches; between pages, wait for the socket whenever it is backed up.
 *  2. hand-over when a read finds nothing past `log.head`, become live in that same tick.
 *  3. live      the engine pushes each announced event that the tables match.
 *  4. catch-up  a push that finds the socket backed up is not written; the subscriber
 *               leaves live, waits for the socket to drain, and goes back to phase 1.
 *
 * Invariant: `cursor` is the highest seq this stream has dealt with (sent, or passed over
 * as not matching), and every event ≤ cursor that matches was sent exactly once, in order.
 * Replay reads never return events above `log.head`, and the log raises `head` in the same
 * tick as it pushes, so at the hand-over every event ≤ head was read and every event > head
 * will be pushed. A push with seq ≤ cursor is ignored, which removes any duplicate.
 */
export class Subscriber {
  readonly spec: SubscriberSpec
  readonly stream: SseStream
  readonly #log: EventLog
  readonly #onDone: (sub: Subscriber) => void
  cursor: number
  live = false
  #sent = 0
  #idSent: number
  #done = false

  constructor(spec: SubscriberSpec, stream: SseStream, log: EventLog, onDone: (sub: Subscriber) => void) {
    this.spec = spec
    this.stream = stream
    this.#log = log
    this.#onDone = onDone
    this.cursor = spec.after
    this.#idSent = spec.after
    stream.onClose(() => this.finish())
  }

  get done(): boolean {
    return this.#done
  }

  /** Phase 1, then the hand-over. Runs again after every catch-up. */
  async replay(): Promise<void> {
    this.live = false
    while (!this.#done) {
      const head = this.#log.head
      const page = this.spec.onlyUser
        ? await this.#log.readUser(this.spec.onlyUser, this.cursor, PAGE)
        : await this.#log.read(this.cursor, PAGE)
      for (const ev of page) {
        if (this.#done || ev.seq <= this.cursor) continue
        if (this.#visible(ev)) this.#send(ev)
        this.cursor = ev.seq
      }
      // A short page holds every event up to the head it was read under.
      if (page.length < PAGE) this.cursor = Math.max(this.cursor, head)
      if (this.#done) return
      this.#markProgress()
      if (this.stream.backedUp) await this.stream.drained()
      if (this.#done) return
      if (this.cursor >= this.#log.head) {
        if (!this.spec.live) return this.finish()
        this.live = true // phase 2: same tick as the check above, so nothing slips between
        return
      }
    }
  }

  /** Phase 3: called by the engine for each matching announced event, in seq order. */
  push(ev: HearthEvent): void {
    if (!this.live || this.#done || ev.seq <= this.cursor) return
    if (!this.#visible(ev)) return
    if (this.stream.backedUp) {
      // Phase 4: drop out of live; the log still has this event and the catch-up reads it.
      this.live = false
      void this.stream.drained().then(() => this.replay())
      return
    }
    this.#send(ev)
    this.cursor = ev.seq
  }

  /** Live streams have dealt with everything up to the head: say so on keepalive. */
  keepalive(frame: Buffer): void {
    if (this.#done || this.stream.backedUp) return
    if (this.live) this.cursor = Math.max(this.cursor, this.#log.head)
    this.#markProgress()
    this.stream.write(frame)
  }

  finish(): void {
    if (this.#done) return
    this.#done = true
    this.live = false
    this.stream.end()
    this.#onDone(this)
  }

  #visible(ev: HearthEvent): boolean {
    if (isPrivate(ev) && ev.user !== this.spec.privUser) return false
    return this.spec.accepts(ev)
  }

  #send(ev: HearthEvent): void {
    const frames = framesOf(ev)
    this.stream.write(this.spec.protocol === 'subscribe' ? frames.subscribe : frames.eventsStream)
    this.#idSent = ev.seq
    this.#sent++
    if (this.spec.limit !== undefined && this.#sent >= this.spec.limit) this.finish()
  }

  /** An id-only frame, so a reconnect skips what was scanned without matching. */
  #markProgress(): void {
    if (this.spec.protocol !== 'subscribe' || this.cursor <= this.#idSent) return
    this.stream.write(idFrame(this.cursor))
    this.#idSent = this.cursor
  }
}
