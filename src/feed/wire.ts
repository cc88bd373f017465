import { KEEPALIVE_FRAME, RETRY_FRAME, UPSTREAM_KEEPALIVE_FRAME, idFrame, resetFrame, type EventFrames } from './frames.js'

/**
 * Every stream kind, by the name metrics label it with; each has its WireFormat below. The
 * metrics report every kind listed here from their first scrape.
 */
export const PROTOCOLS = ['subscribe', 'events-stream'] as const
export type Protocol = (typeof PROTOCOLS)[number]

/**
 * How one kind of stream puts things on the wire: its events, and the signals it has (or
 * lacks). The feed's reading, hand-over and back-pressure are the same for every kind; a new
 * kind of stream is a new WireFormat, and nothing else in the feed asks which kind it serves.
 */
export interface WireFormat {
  readonly protocol: Protocol
  /** written before anything else, if the kind has such a frame */
  readonly opening?: Buffer
  /** written to a live stream on each keepalive tick */
  readonly keepalive: Buffer
  /** an event's frame as text, which a lone reader joins to its own batch */
  text(frames: EventFrames): string
  /** the same bytes, shared by every stream that writes them */
  bytes(frames: EventFrames): Buffer
  /** what a stretch pruned before it could be read becomes (nothing: the stream just goes on) */
  reset(requested: number, floor: number): string | undefined
  /** a position passed without an event, so a reconnect resumes after it (nothing: no such frame) */
  mark(seq: number): string | undefined
}

/** `GET /subscribe` (SPEC §6.3): ids, JSON data, `event: reset`, id-only frames while scanning. */
export const SUBSCRIBE: WireFormat = Object.freeze({
  protocol: 'subscribe',
  opening: RETRY_FRAME,
  keepalive: KEEPALIVE_FRAME,
  text: (frames: EventFrames) => frames.subscribeText,
  bytes: (frames: EventFrames) => frames.subscribe,
  reset: (requested: number, floor: number) => resetFrame(requested, floor),
  mark: (seq: number) => idFrame(seq),
})

/** `GET /events-stream` (SPEC §6.2), as upstream: no reset and no id-only frames. */
export const EVENTS_STREAM: WireFormat = Object.freeze({
  protocol: 'events-stream',
  keepalive: UPSTREAM_KEEPALIVE_FRAME,
  text: (frames: EventFrames) => frames.eventsStreamText,
  bytes: (frames: EventFrames) => frames.eventsStream,
  reset: () => undefined,
  mark: () => undefined,
})
