import { createParser } from 'eventsource-parser'
import { z } from 'zod'
import { backoffDelay, sleep } from './backoff.js'
import { Consumers, type ConsumerOwner } from './consumers.js'
import { HttpError } from './homeserver.js'
import { FollowProtocolError, logEventSchema, resetSchema, type LogEvent, type ResetInfo } from './events.js'
import { openEvents, RetryableError, type Endpoint } from './stream.js'
import { AckChannel, type AckSource } from './ack-channel.js'

/** An event of a consumer's stream: `deliveries` is 1 the first time, more when it comes again. */
export interface ConsumedEvent extends LogEvent {
  deliveries: number
}

export interface ConsumeOptions {
  /** the consumer's owner: a signed-in `HomeserverClient`, or any `{ url, headers() }` */
  owner: ConsumerOwner
  /** the consumer's id (a ULID; make one with `newConsumerId()`, create it with `Consumers.create`) */
  consumer: string
  /**
   * Processes one event. With explicit acks, the event is acknowledged once this resolves, and
   * handed back at once ("not now") when it throws, to this worker or another. It must be
   * idempotent: at least once means an event may come again after a crash or an ack wait.
   */
  handler: (event: ConsumedEvent) => void | Promise<void>
  /** how many events this worker processes at once (default 8) */
  concurrency?: number
  /** aborting stops taking events, waits for those in hand, sends their acks, and ends */
  signal?: AbortSignal
  /** a handler threw: the event was handed back; default: nothing more */
  onError?: (error: unknown, event: ConsumedEvent) => void
  /** retention overtook the consumer: events after `requested` and before `floor` never came */
  onReset?: (reset: ResetInfo) => void
  /** the stream dropped or could not open, and is retried after `delayMs` */
  onRetry?: (retry: { attempt: number; delayMs: number; error: Error }) => void
  /**
   * acks are gathered into one request, with those of the other workers of the consumer in
   * this process that have the same owner and settings: those that come while requests are on
   * their way (up to four per worker), and those that come within this long of the first
   * (default 0: those of one turn of the event loop, so a lone ack leaves at once)
   */
  ackBatchMs?: number
  /** reconnect waits: full jitter over base·2^attempt, capped (default 1 s, cap 30 s) */
  backoff?: { baseMs?: number; maxMs?: number }
  /**
   * a stream silent this long (no event, no keepalive) is dropped and reopened, and an ack
   * request unanswered this long is given up and its acks sent again (default 45 s)
   */
  idleTimeoutMs?: number
}

const deliverySchema = logEventSchema.extend({ deliveries: z.number().int().positive() })
const MAX_FRAME = 1024 * 1024

/** Runs `handler` over a durable consumer's events (SPEC §12); see `ConsumerWorker`. */
export function consume(options: ConsumeOptions): ConsumerWorker {
  return new ConsumerWorker(options)
}

/**
 * One worker of a durable consumer. Several workers (in this process or others, on any
 * instance) share the consumer's events: the server hands each event to one of them at a
 * time, and with explicit acks keeps an event of a user from going out while an earlier one of
 * the same user is unacknowledged. The worker keeps no position of its own: the server keeps
 * it, so a worker that crashes loses nothing; what it had not acknowledged comes again.
 */
export class ConsumerWorker {
  /** resolves when the worker stopped (abort or `close`), rejects when the server refused it for good */
  readonly done: Promise<void>
  readonly #opts: ConsumeOptions
  readonly #ep: Endpoint
  readonly #stop = new AbortController()
  /**
   * where its acks, and "not now"s, go: the ack requests it shares with the other workers of
   * the consumer in this process (AckChannel), each naming the delivery it is about
   * (`<id>:<deliveries>`), so that the server passes over one of an event that went out again
   * meanwhile (the stream closed, or the handler outlasted the ack wait) rather than end the
   * hold of the worker that has it now
   */
  readonly #acks: { channel: AckChannel; source: AckSource }
  /** whether the consumer acks explicitly: read once, before its first stream */
  #explicit: boolean | undefined
  #inFlight = 0
  #slot: (() => void) | undefined
  #processed = 0

  constructor(options: ConsumeOptions) {
    this.#opts = options
    this.#ep = {
      url: options.owner.url.replace(/\/+$/, ''),
      fetch: (input, init) => fetch(input, init),
      headers: options.owner.headers(),
      answerMs: options.idleTimeoutMs ?? 45_000,
    }
    this.#acks = AckChannel.join({
      url: `${this.#ep.url}/consumers/${encodeURIComponent(options.consumer)}/ack`,
      headers: this.#ep.headers, answerMs: this.#ep.answerMs, ackBatchMs: options.ackBatchMs ?? 0,
    })
    if (options.signal?.aborted) this.#stop.abort()
    else options.signal?.addEventListener('abort', () => this.#stop.abort(), { once: true })
    this.done = this.#run()
  }

  /** events whose handler resolved */
  get processed(): number {
    return this.#processed
  }

  /**
   * Stops taking events, lets those in hand finish, sends their acks: an ack request that fails
   * is tried again, for up to `idleTimeoutMs`.
   */
  async close(): Promise<void> {
    this.#stop.abort()
    await this.done.catch(() => {})
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal
    try {
      for (let attempt = 0; !signal.aborted; attempt++) {
        let error: Error
        try {
          // read in the loop: a worker started while the server is down waits for it like a stream does
          this.#explicit ??= await this.#isExplicit()
          const res = await openEvents(this.#ep, `/consumers/${encodeURIComponent(this.#opts.consumer)}/events`, {}, signal)
          attempt = 0
          error = await this.#read(res.body, signal)
        } catch (err) {
          if (!(err instanceof RetryableError)) throw err
          error = err
        }
        if (signal.aborted) break
        const policy = { baseMs: this.#opts.backoff?.baseMs ?? 1000, maxMs: this.#opts.backoff?.maxMs ?? 30_000, jitter: 1 }
        const delayMs = backoffDelay(policy, attempt)
        this.#opts.onRetry?.({ attempt, delayMs, error })
        await sleep(delayMs, signal)
      }
    } catch (err) {
      if (!signal.aborted) throw err
    } finally {
      while (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#slot = resolve))
      await this.#acks.channel.leave(this.#acks.source)
    }
  }

  /** Whether the consumer acks explicitly; a failure another attempt may not meet is a RetryableError. */
  async #isExplicit(): Promise<boolean> {
    try {
      return (await new Consumers(this.#opts.owner).get(this.#opts.consumer)).ack === 'explicit'
    } catch (err) {
      if (err instanceof HttpError && err.status < 500 && err.status !== 429) throw err
      throw new RetryableError(`the consumer could not be read: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Reads one stream until it ends; the handlers of its events run at most `concurrency` at once. */
  async #read(body: ReadableStream<Uint8Array>, signal: AbortSignal): Promise<Error> {
    const reader = body.getReader()
    const stopRead = () => void reader.cancel().catch(() => {})
    signal.addEventListener('abort', stopRead, { once: true })
    const events: ConsumedEvent[] = []
    let broken: Error | undefined
    const parser = createParser({
      onEvent: (msg) => {
        try {
          if (msg.event === 'reset') this.#opts.onReset?.(resetSchema.parse(JSON.parse(msg.data)))
          else if (msg.event === 'PUT' || msg.event === 'DEL') events.push(deliverySchema.parse(JSON.parse(msg.data)))
        } catch {
          broken ??= new FollowProtocolError(`the consumer's stream sent a malformed ${msg.event ?? 'message'} frame`)
        }
      },
      onError: (err) => void (err.type === 'max-buffer-size-exceeded' && (broken ??= new FollowProtocolError('the consumer\'s stream sent an oversized frame'))),
      maxBufferSize: MAX_FRAME,
    })
    const decoder = new TextDecoder()
    const idleMs = this.#ep.answerMs
    try {
      while (!signal.aborted) {
        let timer: ReturnType<typeof setTimeout> | undefined
        const idle = new Promise<'idle'>((resolve) => (timer = setTimeout(() => resolve('idle'), idleMs)))
        const chunk = await Promise.race([reader.read(), idle]).finally(() => clearTimeout(timer))
        if (chunk === 'idle') return new RetryableError(`the stream sent nothing for ${idleMs} ms`)
        if (chunk.done) return new RetryableError('the stream ended')
        parser.feed(decoder.decode(chunk.value, { stream: true }))
        // a handler starts at once while a slot is free; the stream is read on once each has
        while (events.length > 0 && !signal.aborted) {
          if (this.#inFlight >= (this.#opts.concurrency ?? 8)) await this.#freeSlot()
          if (signal.aborted) break
          this.#start(events.shift()!)
        }
        if (broken !== undefined) throw broken
      }
      return new RetryableError('stopped')
    } catch (err) {
      if (err instanceof FollowProtocolError) throw err
      return new RetryableError(`the stream broke: ${(err as Error).message}`, { cause: err })
    } finally {
      signal.removeEventListener('abort', stopRead)
      stopRead()
      // received, never started: handed back at once rather than after their ack wait
      for (const event of events) this.#queue('nak', event)
    }
  }

  /** Resolves once a handler ends and its slot is free. */
  async #freeSlot(): Promise<void> {
    while (this.#inFlight >= (this.#opts.concurrency ?? 8)) await new Promise<void>((resolve) => (this.#slot = resolve))
  }

  /**
   * Runs the handler in a free slot. A handler that returns no promise (or thenable) is done
   * at once: its ack is queued in the same turn, with no promise made for it.
   */
  #start(event: ConsumedEvent): void {
    this.#inFlight++
    let result: unknown
    try {
      result = this.#opts.handler(event)
    } catch (err) {
      return this.#ended(event, false, err)
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') return this.#ended(event, true)
    Promise.resolve(result).then(() => this.#ended(event, true), (err: unknown) => this.#ended(event, false, err))
  }

  /** A handler ended: its ack (or, when it threw, its "not now") is queued and its slot freed. */
  #ended(event: ConsumedEvent, ok: boolean, err?: unknown): void {
    if (ok) {
      this.#processed++
      this.#queue('ack', event)
    } else {
      this.#queue('nak', event)
      try {
        this.#opts.onError?.(err, event)
      } catch {
        // what reports a failure must not become one: the worker goes on
      }
    }
    this.#inFlight--
    const wake = this.#slot
    this.#slot = undefined
    wake?.()
  }

  #queue(kind: 'ack' | 'nak', event: ConsumedEvent): void {
    if (!this.#explicit) return
    this.#acks.channel.queue(this.#acks.source, kind, kind === 'ack' ? event.id : `${event.id}:${event.deliveries}`)
  }
}
