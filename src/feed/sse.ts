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
  /** writes handed to the response, and how many of them the socket has handed on to the kernel */
  #writes = 0
  #flushed = 0
  /** who waits for the socket to take everything written */
  readonly #drainWaiters: (() => void)[] = []
  /** every write's callback, run in order once the socket has handed that write on (or failed it) */
  readonly #wrote = (): void => {
    if (++this.#flushed === this.#writes) this.#wake()
  }

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
      this.#wake()
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

  get buffered(): number {
    return this.#res.writableLength
  }

  write(chunk: string | Buffer): void {
    if (this.closed) return
    if (this.#corked ? !this.#held : !this.#res.socket?.writableCorked) this.#tally.writes++
    this.#held = this.#corked
    this.#writes++
    this.#res.write(chunk, this.#wrote)
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

  /**
   * Resolves when the socket has handed every write on to the kernel, or the stream closed.
   * It counts the writes' own callbacks rather than waiting for 'drain': a response emits
   * 'drain' only after it refused a write, so a stream that stops below the socket's high-water
   * mark would poll, and a response counts text in bytes where its socket counts characters,
   * so a write of text that is not ASCII can be refused by one and not the other, and then no
   * 'drain' ever comes.
   */
  drained(): Promise<void> {
    if (this.#closed || this.#flushed === this.#writes) return Promise.resolve()
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  /** Whether the stream drains (or closes) within `ms`. */
  async drainedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)))
    try {
      return await Promise.race([this.drained().then(() => true), late])
    } finally {
      clearTimeout(timer)
    }
  }

  #wake(): void {
    for (const resolve of this.#drainWaiters.splice(0)) resolve()
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
