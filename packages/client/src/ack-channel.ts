import { later, type Later } from './later.js'
import { postJson } from './post-json.js'

/** acks waiting beyond this many are sent as soon as they can be, not after `ackBatchMs` */
const ACK_BATCH = 256
/**
 * Ack requests on their way at once, per worker on the channel. One at a time left a busy
 * worker's acks waiting a whole round trip (the server's commit included) behind the one
 * before; acks are idempotent and each names its own events, so their order does not matter.
 */
const ACK_REQUESTS = 4
/** A failed ack request's acks go again after this long. */
const ACK_RETRY_MS = 1000

/** Where a channel sends, and how: workers with the same share it. */
export interface AckTarget {
  /** the consumer's ack route */
  url: string
  headers: Record<string, string>
  /** an ack request unanswered this long is given up (its acks sent again while a worker is on the channel) */
  answerMs: number
  ackBatchMs: number
}

/** An ack or "not now" (`<id>:<deliveries>`) of one worker, until it is sent. */
interface Queued {
  kind: 'ack' | 'nak'
  token: string
  from: AckSource
}

/** A worker's side of a channel: its acks not yet sent, and who waits for them. */
export class AckSource {
  pending = 0
  #waiting: (() => void)[] = []

  /** Resolves once none of its acks waits, or at `deadline` (ms since the epoch). */
  async sent(deadline: number): Promise<void> {
    while (this.pending > 0 && Date.now() < deadline) {
      let wake!: () => void
      const timer = setTimeout(() => wake(), deadline - Date.now())
      await new Promise<void>((resolve) => this.#waiting.push((wake = resolve)))
      clearTimeout(timer)
      const at = this.#waiting.indexOf(wake)
      if (at !== -1) this.#waiting.splice(at, 1)
    }
  }

  settled(n: number): void {
    this.pending -= n
    if (this.pending > 0) return
    for (const wake of this.#waiting.splice(0)) wake()
  }
}

const channels = new Map<string, AckChannel>()

/**
 * The ack requests of the workers of one consumer in this process (same server, same owner's
 * headers, same settings): the acks they gather in one turn of the event loop leave in one
 * request. An ack request costs the server far more than an ack in it (its HTTP exchange and
 * log line, about 180 µs of CPU, against microseconds): four workers that sent their own took
 * about 800 requests for 50,000 events, one worker 200. Up to ACK_REQUESTS requests per worker
 * on the channel are on their way at once; the acks that come meanwhile go with the next. A
 * request that fails is sent again after ACK_RETRY_MS (sooner when other acks leave sooner),
 * with what came since, while a worker is on the channel; what a request that was answered
 * 4xx (other than 429) carried is dropped, and its events come back after their ack wait,
 * which at least once allows.
 */
export class AckChannel {
  readonly #key: string
  readonly #target: AckTarget
  readonly #sources = new Set<AckSource>()
  #queued: Queued[] = []
  #timer: Later | undefined
  /** when the timer fires (ms since the epoch) */
  #timerAt = 0
  readonly #requests = new Set<Promise<void>>()

  private constructor(key: string, target: AckTarget) {
    this.#key = key
    this.#target = target
  }

  /** Joins the channel of `target`, making it when none is open: the worker's side of it. */
  static join(target: AckTarget): { channel: AckChannel; source: AckSource } {
    const key = JSON.stringify([target.url, target.headers, target.answerMs, target.ackBatchMs])
    let channel = channels.get(key)
    if (channel === undefined) channels.set(key, (channel = new AckChannel(key, target)))
    const source = new AckSource()
    channel.#sources.add(source)
    return { channel, source }
  }

  /** Queues an ack (or "not now") of `source`'s worker. */
  queue(source: AckSource, kind: 'ack' | 'nak', token: string): void {
    this.#queued.push({ kind, token, from: source })
    source.pending++
    if (this.#queued.length >= ACK_BATCH) this.#flush()
    else if (this.#requests.size < this.#most() && this.#timer === undefined) this.#flushIn(this.#target.ackBatchMs)
  }

  /**
   * A worker stops: what is queued leaves now (when fewer requests than the most are on their
   * way; else as soon as one is answered), and its own acks are waited for, for as long as an
   * ack request may go unanswered (`answerMs`); then it leaves the channel. The last to leave
   * closes it: what is still queued is dropped (those events come back after their ack wait),
   * and the requests on their way are waited for, which may take up to `answerMs` again.
   */
  async leave(source: AckSource): Promise<void> {
    this.#flush()
    await source.sent(Date.now() + this.#target.answerMs)
    this.#sources.delete(source)
    if (this.#sources.size > 0) return
    if (channels.get(this.#key) === this) channels.delete(this.#key)
    this.#timer?.cancel()
    this.#timer = undefined
    this.#queued = []
    await Promise.all(this.#requests)
  }

  /** Ack requests on their way at once: ACK_REQUESTS per worker on the channel. */
  #most(): number {
    return ACK_REQUESTS * Math.max(1, this.#sources.size)
  }

  /** Flushes in `ms`, unless a flush is due sooner already. */
  #flushIn(ms: number): void {
    const at = Date.now() + ms
    if (this.#timer !== undefined && this.#timerAt <= at) return
    this.#timer?.cancel()
    this.#timerAt = at
    this.#timer = later(() => this.#flush(), ms)
  }

  #flush(): void {
    this.#timer?.cancel()
    this.#timer = undefined
    if (this.#requests.size >= this.#most() || this.#queued.length === 0) return
    const sending = this.#queued
    this.#queued = []
    const request: Promise<void> = this.#send(sending).finally(() => {
      this.#requests.delete(request)
      if (this.#timer === undefined && this.#queued.length > 0 && this.#sources.size > 0) this.#flush()
    })
    this.#requests.add(request)
  }

  async #send(sending: Queued[]): Promise<void> {
    const body = { ack: [] as string[], nak: [] as string[] }
    for (const q of sending) body[q.kind].push(q.token)
    try {
      const status = await postJson(this.#target.url, this.#target.headers, body, this.#target.answerMs)
      if (status >= 500 || status === 429) throw new Error(`HTTP ${status}`)
    } catch {
      // tried again with what comes meanwhile, while a worker is on the channel
      if (this.#sources.size === 0) return this.#settle(sending)
      this.#queued.push(...sending)
      this.#flushIn(ACK_RETRY_MS)
      return
    }
    this.#settle(sending)
  }

  /** These acks are done with (answered, or dropped): each worker's count goes down by those of its own. */
  #settle(done: Queued[]): void {
    const counts = new Map<AckSource, number>()
    for (const q of done) counts.set(q.from, (counts.get(q.from) ?? 0) + 1)
    for (const [source, n] of counts) source.settled(n)
  }
}
