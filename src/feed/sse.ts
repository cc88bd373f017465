import type { ServerResponse } from 'node:http'

/** Unsent bytes a stream may hold before its subscriber leaves the live push path. */
export const HIGH_WATER = 64 * 1024

/**
 * Unsent bytes a write adds besides its own: a response without a length is sent in chunks,
 * each led by its size in hex and a CRLF and closed by a CRLF (at most 8 digits + 4 bytes).
 */
export const WRITE_OVERHEAD = 12

/** Writes handed to sockets, shared by the streams of one protocol and read at each metrics scrape. */
export interface WriteTally {
  writes: number
}

/**
 * One SSE response, written directly to the socket so that backpressure is visible:
 * `backedUp` reads the bytes the kernel has not taken yet, which is the only buffer a
 * subscriber can grow, and it never grows past HIGH_WATER plus one frame.
 *
 * Each batch of bytes the socket sends in one go counts once in `tally`: what is written while
 * it is corked, by `cork` or by Node, which corks a response's socket on a write until the
 * next tick. A write that finds the socket corked joins the batch already counted.
 */
export class SseStream {
  readonly #res: ServerResponse
  readonly #tally: WriteTally
  #closed = false
  #corked = false
  /** while corked: whether the socket holds a batch already counted */
  #held = false
  readonly #onClose: (() => void)[] = []

  constructor(res: ServerResponse, headers: Record<string, string | number | string[]>, tally: WriteTally) {
    this.#res = res
    this.#tally = tally
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    })
    res.flushHeaders()
    res.socket?.setNoDelay(true)
    res.once('close', () => {
      this.#closed = true
      for (const cb of this.#onClose.splice(0)) cb()
    })
  }

  /** the client left, or the stream was ended: nothing more is written */
  get closed(): boolean {
    return this.#closed || this.#res.writableEnded
  }

  get backedUp(): boolean {
    return this.#res.writableLength > HIGH_WATER
  }

  get highWater(): number {
    return HIGH_WATER
  }

  /** the unsent bytes at which the socket refuses a write, and so sends 'drain' once it has taken them (64 KiB on Node 24) */
  get refusesAt(): number {
    return this.#res.socket?.writableHighWaterMark ?? HIGH_WATER
  }

  get buffered(): number {
    return this.#res.writableLength
  }

  write(chunk: string | Buffer): void {
    if (this.closed) return
    if (this.#corked ? !this.#held : !this.#res.socket?.writableCorked) this.#tally.writes++
    this.#held = this.#corked
    this.#res.write(chunk)
  }

  /**
   * Holds writes until `uncork`, so the frames one commit brings a subscriber leave in one
   * system call. Held bytes count in `buffered` like any others.
   */
  cork(): void {
    if (this.#corked || this.#closed) return
    this.#held = (this.#res.socket?.writableCorked ?? 0) > 0
    this.#corked = true
    this.#res.cork()
  }

  uncork(): void {
    if (!this.#corked) return
    this.#corked = false
    this.#res.uncork()
  }

  /** Resolves when the socket has taken what was buffered, or the stream closed. */
  drained(): Promise<void> {
    if (this.#closed || this.#res.writableLength === 0) return Promise.resolve()
    // No write was refused, so no 'drain' will come: the few bytes left go out on their own.
    if (!this.#res.writableNeedDrain) return new Promise((resolve) => setImmediate(resolve))
    return new Promise((resolve) => {
      const done = () => {
        this.#res.off('drain', done)
        this.#res.off('close', done)
        resolve()
      }
      this.#res.once('drain', done)
      this.#res.once('close', done)
    })
  }

  onClose(cb: () => void): void {
    if (this.#closed) cb()
    else this.#onClose.push(cb)
  }

  end(): void {
    this.#corked = false // end() sends whatever is corked
    if (!this.closed) this.#res.end()
  }
}
