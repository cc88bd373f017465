import { eventUri, type HearthEvent } from '../events/event.js'
import { idOf } from 'hearth-homeserver-client/id'
import { dataOf, idOfEvent } from '../events/stored.js'

/**
 * The bytes of one event in each stream protocol, encoded on first use and kept on the event's
 * holder, so N subscribers of one protocol share one Buffer (encode once, send many).
 * `framesOf(event)` hands every caller holding the same event object the same holder.
 */
export class EventFrames {
  readonly event: HearthEvent
  #id?: string
  #subscribeText?: string
  #subscribe?: Buffer
  #eventsStreamText?: string
  #eventsStream?: Buffer

  constructor(event: HearthEvent) {
    this.event = event
  }

  /** the 13-character id */
  get id(): string {
    return (this.#id ??= idOfEvent(this.event))
  }

  /**
   * `GET /subscribe`: `id`, `event`, one JSON `data` line (`subscribeData`: as stored, for an
   * event read from storage, so a replay sends stored bytes).
   */
  get subscribeText(): string {
    return (this.#subscribeText ??= `id: ${this.id}\nevent: ${this.event.type}\ndata: ${dataOf(this.event)}\n\n`)
  }

  /** The same bytes, shared by every live subscriber the event is pushed to. */
  get subscribe(): Buffer {
    return (this.#subscribe ??= Buffer.from(this.subscribeText))
  }

  /**
   * `GET /events-stream`, byte for byte as upstream (axum writes `name: value`) up to the
   * blank line, with `id: <seq>` added last so clients that read the first lines as
   * upstream's see exactly upstream's.
   */
  get eventsStreamText(): string {
    if (this.#eventsStreamText === undefined) {
      const ev = this.event
      const hash = ev.type === 'PUT' ? `data: content_hash: ${ev.contentHash}\n` : ''
      this.#eventsStreamText = `event: ${ev.type}\ndata: ${eventUri(ev)}\ndata: cursor: ${ev.seq}\n${hash}id: ${ev.seq}\n\n`
    }
    return this.#eventsStreamText
  }

  get eventsStream(): Buffer {
    return (this.#eventsStream ??= Buffer.from(this.eventsStreamText))
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
  return `id: ${idOf(seq)}\n\n`
}

/**
 * The cursor was below the floor. Both are decimal strings, like `seq` in event data:
 * `requested` is the exclusive cursor the client sent, `floor` the oldest retained seq,
 * which is the first event the stream sends next. No `id` line: nothing was consumed yet.
 */
export function resetFrame(requested: bigint | number, floor: bigint | number): string {
  return `event: reset\ndata: ${JSON.stringify({ requested: String(requested), floor: String(floor) })}\n\n`
}
