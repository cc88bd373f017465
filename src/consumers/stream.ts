import type { HearthEvent } from '../events/event.js'
import { dataOf, idOfEvent } from '../events/stored.js'
import { KEEPALIVE_FRAME, RETRY_FRAME, resetFrame } from '../feed/frames.js'
import type { SseStream } from '../feed/sse.js'

/**
 * One worker's stream of a consumer (`GET /consumers/<ulid>/events`): the frames of
 * `/subscribe`, whose data adds `"deliveries": n`. It holds what the store leased to its
 * `holder` name; `held` is how many of those it holds now, as the last stored record says.
 */
export class ConsumerStream {
  readonly sse: SseStream
  /** the lease holder's name: unique to this stream, on every instance */
  readonly holder: string
  /** the session that opened it: signing it out ends the stream */
  readonly session: string
  held = 0

  constructor(sse: SseStream, holder: string, session: string) {
    this.sse = sse
    this.holder = holder
    this.session = session
    sse.write(RETRY_FRAME)
  }

  get closed(): boolean {
    return this.sse.closed
  }

  /** How many more events it may take now: its share of the consumer's pending events, none while its socket is backed up. */
  room(share: number): number {
    return this.closed || this.sse.backedUp ? 0 : Math.max(0, share - this.held)
  }

  /** Writes delivery frames (`deliveryFrame`) in one write. */
  deliver(frames: readonly string[]): void {
    this.sse.write(frames.join(''))
  }

  reset(requested: number, floor: number): void {
    this.sse.write(resetFrame(requested, floor))
  }

  keepalive(): void {
    if (!this.sse.backedUp) this.sse.write(KEEPALIVE_FRAME)
  }

  end(): void {
    this.sse.end()
  }
}

/** An event's `/subscribe` frame, its data with `"deliveries": n` added. */
export function deliveryFrame(ev: HearthEvent, deliveries: number): string {
  const data = dataOf(ev)
  return `id: ${idOfEvent(ev)}\nevent: ${ev.type}\ndata: ${data.slice(0, -1)},"deliveries":${deliveries}}\n\n`
}
