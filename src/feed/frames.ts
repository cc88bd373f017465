import { eventUri, type HearthEvent } from '../events/event.js'
import { encodeId } from '../events/id.js'

/**
 * The bytes of one event in each protocol, encoded on first use and kept on the event's
 * holder, so N subscribers of one protocol share one Buffer (encode once, send many).
 * `framesOf(event)` hands every caller holding the same event object the same holder.
 */
export class EventFrames {
  readonly event: HearthEvent
  #id?: string
  #subscribe?: Buffer
  #eventsStream?: Buffer
  #feedLine?: string

  constructor(event: HearthEvent) {
    this.event = event
  }

  /** the 13-character id */
  get id(): string {
    return (this.#id ??= encodeId(this.event.seq))
  }

  /**
   * `GET /subscribe`: `id`, `event`, one JSON `data` line. `seq` is a decimal string because a
   * u64 does not fit a JSON number; DEL has no contentHash or size. Key order is fixed.
   */
  get subscribe(): Buffer {
    if (this.#subscribe === undefined) {
      const ev = this.event
      const head = { id: this.id, seq: String(ev.seq), type: ev.type, user: ev.user, path: ev.path, uri: eventUri(ev) }
      const data = ev.type === 'PUT' ? { ...head, contentHash: ev.contentHash, size: ev.size, ts: ev.ts } : { ...head, ts: ev.ts }
      this.#subscribe = Buffer.from(`id: ${this.id}\nevent: ${ev.type}\ndata: ${JSON.stringify(data)}\n\n`)
    }
    return this.#subscribe
  }

  /**
   * `GET /events-stream`, byte for byte as upstream (axum writes `name: value`) up to the
   * blank line, with `id: <seq>` added last so clients that read the first lines as
   * upstream's see exactly upstream's.
   */
  get eventsStream(): Buffer {
    if (this.#eventsStream === undefined) {
      const ev = this.event
      const hash = ev.type === 'PUT' ? `data: content_hash: ${ev.contentHash}\n` : ''
      this.#eventsStream = Buffer.from(
        `event: ${ev.type}\ndata: ${eventUri(ev)}\ndata: cursor: ${ev.seq}\n${hash}id: ${ev.seq}\n\n`,
      )
    }
    return this.#eventsStream
  }

  /** `GET /events/`: one line without its newline; the route joins lines with `\n`. */
  get feedLine(): string {
    return (this.#feedLine ??= `${this.event.type} ${eventUri(this.event)}`)
  }
}

const holders = new WeakMap<HearthEvent, EventFrames>()

export function framesOf(event: HearthEvent): EventFrames {
  let frames = holders.get(event)
  if (frames === undefined) holders.set(event, (frames = new EventFrames(event)))
  return frames
}

/** `/subscribe` opens with this: reconnect after 2 s. */
export const RETRY_FRAME = Buffer.from('retry: 2000\n\n')
/** `/subscribe` keepalive comment. */
export const KEEPALIVE_FRAME = Buffer.from(': keepalive\n\n')
/** `/events-stream` keepalive: axum's default, an empty comment every 15 s of silence. */
export const UPSTREAM_KEEPALIVE_FRAME = Buffer.from(':\n\n')

/** Progress without data: a reconnect resumes after what was already scanned. */
export function idFrame(seq: bigint | number): string {
  return `id: ${encodeId(seq)}\n\n`
}

/**
 * The cursor was below the floor. Both are decimal strings, like `seq` in event data:
 * `requested` is the exclusive cursor the client sent, `floor` the oldest retained seq,
 * which is the first event the stream sends next. No `id` line: nothing was consumed yet.
 */
export function resetFrame(requested: bigint | number, floor: bigint | number): string {
  return `event: reset\ndata: ${JSON.stringify({ requested: String(requested), floor: String(floor) })}\n\n`
}
