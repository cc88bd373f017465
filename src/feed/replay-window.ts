import { HIGH_WATER } from './sse.js'

/**
 * Unsent bytes all streams that read the log (replays and catch-ups) may hold together, in
 * equal shares: up to 256 such streams each get the full HIGH_WATER, so a lone replay batches
 * as much per write as a live stream may hold; more share this many bytes.
 */
export const REPLAY_WINDOW = 16 * 1024 * 1024

/**
 * The high-water mark of streams that read the log. A thousand stalled streams that resume at
 * once would otherwise each fill HIGH_WATER of socket buffer while their clients catch up,
 * 64 MB between them on top of the pages they share; their shares shrink instead, and grow
 * back as they turn live. A stream counts from the moment its replay starts until it turns
 * live or ends, its waits for its socket included.
 */
export class ReplayWindow {
  readonly total: number
  #streams = 0

  constructor(total = REPLAY_WINDOW) {
    this.total = total
  }

  /** streams reading the log now */
  get streams(): number {
    return this.#streams
  }

  enter(): void {
    this.#streams++
  }

  leave(): void {
    this.#streams--
  }

  /** The unsent bytes past which one of them queues no more frames. */
  share(): number {
    return Math.min(HIGH_WATER, Math.floor(this.total / Math.max(1, this.#streams)))
  }
}
