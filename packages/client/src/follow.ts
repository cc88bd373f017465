import { AckWindow, type Entry } from './ack-window.js'
import { backoffDelay, sleep } from './backoff.js'
import { MemoryCursorStore, namedCursorStore, type CursorStore } from './cursor-store.js'
import { ResetError, type FollowEvent, type FollowState, type ResetInfo } from './events.js'
import { FrameReader, type Item } from './frame-reader.js'
import { isToken, type SnapshotHandler } from './snapshot.js'
import { idOf, parseCursor } from './id.js'
import { openSubscribe, readHead, RetryableError, type Endpoint, type Position } from './stream.js'

export interface FollowOptions {
  /** the homeserver, e.g. `http://127.0.0.1:6286` */
  url: string
  /** `/subscribe` filters (`*`, `<z32>/*`, `*\/pub/app/*`, an exact path); none means every public event */
  filters?: readonly string[]
  /**
   * where to begin when the cursor store holds nothing: `'start'`, `'now'`, an id or a decimal
   * seq (exclusive). Default: `'now'`, or with `snapshot` a snapshot.
   */
  from?: string
  /**
   * Begin with a snapshot (SPEC §13): every file the filters cover, as it is, handed to
   * `snapshot.onFile`, then the events after it through the iterator. Taken when the cursor
   * store holds nothing and `from` is not given, and with `onReset: 'snapshot'` when the
   * homeserver pruned events after the cursor. During a snapshot the cursor store is given
   * resume tokens (starting with `~`), so a follower stopped in the middle resumes it; after
   * it, the ids of events as usual.
   */
  snapshot?: SnapshotHandler
  /**
   * where the position is kept: a store, a name, or `'memory'` (this process only). A name is
   * a file path in Node (`FileCursorStore`) and a `localStorage` key in a browser
   * (`WebStorageCursorStore`). Default: the name `.hearth-cursor-<hash>` of the url and the
   * filters (in Node a file in the working folder), so a restarted follower resumes where it
   * stopped.
   */
  cursorStore?: CursorStore | string
  /** `'auto'` (default): an event is acked when the loop asks for the next one. `'explicit'`: call `event.ack()` */
  ack?: 'auto' | 'explicit'
  /** aborting ends the iteration cleanly, after saving the acknowledged position */
  signal?: AbortSignal
  fetch?: typeof fetch
  /** extra request headers, e.g. a session cookie to see its owner's `/priv/` events */
  headers?: Record<string, string>
  onState?: (state: FollowState) => void
  /**
   * Called when an attempt to connect failed in a way a later one may not (the network, a
   * 5xx, a 429), or an open stream ended, broke or went silent, before the wait for the next
   * attempt: `error` says why, `delayMs` how long it waits.
   */
  onRetry?: (retry: { attempt: number; delayMs: number; error: Error }) => void
  /**
   * Called when the homeserver pruned events this follower had not processed. Without it the
   * iterator throws a `ResetError`. When it returns, the gap counts as handled and the
   * cursor may move past it. `'snapshot'` (with `snapshot`): take a new snapshot instead,
   * after `snapshot.onStart({ cause: 'reset' })`, so a consumer that drops its state there ends
   * with the homeserver's files again, then follows the events after them.
   */
  onReset?: ((reset: ResetInfo) => void | Promise<void>) | 'snapshot'
  /** explicit acks: how many unacknowledged events may be out before the iterator waits (default 10000) */
  maxUnacked?: number
  /** reconnect waits: full jitter over base·2^attempt, capped (default: the server's `retry:` hint, else 1 s; cap 30 s) */
  backoff?: { baseMs?: number; maxMs?: number }
  /**
   * a silent connection is dropped and reopened after this long (default 45 s, three
   * keepalives); so is a request whose answer does not start within it
   */
  idleTimeoutMs?: number
  /** a frame longer than this many characters drops the stream as broken (default 1 MiB; events are at most a few KiB) */
  maxFrameBytes?: number
  /** how often the head is read from `/info` for `lag` (default 5 s) */
  headPollMs?: number
}

const DEFAULTS = { maxUnacked: 10_000, baseMs: 1000, maxMs: 30_000, idleTimeoutMs: 45_000, headPollMs: 5000, maxFrameBytes: 1024 * 1024 }

/** Follows a homeserver's `/subscribe` stream; see `Follower`. */
export function follow(options: FollowOptions): Follower {
  return new Follower(options)
}

/**
 * An at-least-once iterator over the event log. Its position (`cursor`) moves only over
 * acknowledged events, and is saved to the cursor store in order; after a crash the events
 * after the saved position come again. Within one run it reconnects by itself, resuming
 * after the last event it received, so a reconnect repeats nothing.
 *
 * With `snapshot`, the iterator first hands the snapshot's frames to the handler, each
 * awaited, the position moving over each one once it returned; after `synced` the events
 * come as above.
 *
 * One consumer per follower; the iterator is single-use.
 */
export class Follower implements AsyncIterableIterator<FollowEvent> {
  readonly #opts: FollowOptions
  readonly #ep: Endpoint
  readonly #store: CursorStore
  readonly #stop = new AbortController()
  #state: FollowState = 'connecting'
  /** what was acknowledged, from the starting position on; none during a snapshot */
  #window: AckWindow | undefined
  /** during a snapshot: the resume token of the last frame processed, if any */
  #snapshot: { token: string | undefined } | undefined
  /** items received and not yet handed out, in stream order */
  readonly #queue: Item[] = []
  #reader: FrameReader | undefined
  /** where a reconnect resumes: after the last item received from the server */
  #received: Position | undefined
  /** the highest position handed to the consumer or passed over */
  #delivered = 0n
  #head = 0n
  /** the head seen when the current connection opened; `live` once delivered reaches it */
  #liveAt = 0n
  #attempt = 0
  #connections = 0
  /** the next connection opens at once: the last stream was left on purpose, not lost */
  #reopenNow = false
  #retryMs: number | undefined
  /** why the last open stream ended, reported with the reconnect that follows */
  #dropped: Error | undefined
  /** the auto ack of the event in hand */
  #current: (() => void) | undefined
  #ackWaiters: (() => void)[] = []
  #started = false
  #closing: Promise<void> | undefined
  #serial: Promise<unknown> = Promise.resolve()
  #poll: ReturnType<typeof setTimeout> | undefined
  #toSave: string | undefined
  #saved: string | undefined
  #saving: Promise<void> | undefined
  #saveError: unknown

  constructor(options: FollowOptions) {
    if (options.from !== undefined && !['start', 'now'].includes(options.from) && parseCursor(options.from) === undefined) {
      throw new TypeError(`from: expected 'start', 'now', an id or a decimal seq, got ${options.from}`)
    }
    if (options.onReset === 'snapshot' && options.snapshot === undefined) {
      throw new TypeError("onReset: 'snapshot' needs a snapshot handler to take the files")
    }
    this.#opts = options
    this.#ep = {
      url: options.url.replace(/\/+$/, ''),
      // a browser's fetch throws "Illegal invocation" when called as another object's method
      fetch: options.fetch ?? ((input, init) => fetch(input, init)),
      headers: options.headers ?? {},
      answerMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    }
    const store = options.cursorStore
    if (store === 'memory') this.#store = new MemoryCursorStore()
    else if (typeof store === 'string') this.#store = namedCursorStore(store)
    else this.#store = store ?? namedCursorStore(defaultCursorFile(this.#ep.url, options.filters ?? []))
    if (options.signal?.aborted) void this.close()
    else options.signal?.addEventListener('abort', () => void this.close(), { once: true })
  }

  get state(): FollowState {
    return this.#state
  }

  /** Events between the last acknowledged position and the homeserver's head; 0 during a snapshot. */
  get lag(): number {
    const cursor = this.#window?.cursor
    return cursor === undefined || this.#head <= cursor ? 0 : Number(this.#head - cursor)
  }

  /** The id of the acknowledged position, once known; during a snapshot, the resume token of the last frame processed. */
  get cursor(): string | undefined {
    if (this.#snapshot !== undefined) return this.#snapshot.token
    return this.#window === undefined ? undefined : idOf(this.#window.cursor)
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  next(): Promise<IteratorResult<FollowEvent>> {
    // Asking for the next event is what acks the last one in auto mode, right now, so a
    // close() that follows this call saves it.
    if (this.#opts.ack !== 'explicit') this.#current?.()
    this.#current = undefined
    const step = this.#serial.catch(() => {}).then(() => this.#next())
    this.#serial = step
    return step
  }

  /** `break` out of a loop lands here. The event in hand is not acked: ack it first if it was processed. */
  async return(): Promise<IteratorResult<FollowEvent>> {
    await this.close()
    return { done: true, value: undefined }
  }

  /** Stops following and saves the acknowledged position. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#setState('closed')
      this.#stop.abort()
      clearInterval(this.#poll)
      this.#reader?.cancel()
      this.#reader = undefined
      for (const wake of this.#ackWaiters.splice(0)) wake()
      while (this.#saving !== undefined) await this.#saving
    })()
    return this.#closing
  }

  async #next(): Promise<IteratorResult<FollowEvent>> {
    try {
      if (!this.#started && this.#closing === undefined) await this.#start()
      while (this.#closing === undefined && this.#saveError === undefined) {
        if ((this.#window?.unacked ?? 0) >= (this.#opts.maxUnacked ?? DEFAULTS.maxUnacked)) {
          await new Promise<void>((wake) => this.#ackWaiters.push(wake))
          continue
        }
        const item = this.#queue.shift()
        if (item === undefined) {
          await this.#fill()
          continue
        }
        const event = await this.#take(item)
        if (event !== undefined) return { done: false, value: event }
      }
    } catch (err) {
      await this.close()
      throw err
    }
    await this.close()
    while (this.#saving !== undefined) await this.#saving // a late auto ack may have started one
    // A failed save is reported once, by the call that finds it.
    const failed = this.#saveError
    this.#saveError = undefined
    if (failed !== undefined) throw failed
    return { done: true, value: undefined }
  }

  async #start(): Promise<void> {
    this.#started = true
    const stored = await this.#store.load()
    const snapshot = this.#opts.snapshot
    if (stored !== undefined && isToken(stored)) {
      // a snapshot cut short: it resumes after the last frame processed
      if (snapshot === undefined) throw new TypeError(`the cursor store holds ${stored}, a position inside a snapshot, and no snapshot handler was given`)
      this.#enterSnapshot(stored)
    } else if (stored === undefined && this.#opts.from === undefined && snapshot !== undefined) {
      await snapshot.onStart({ cause: 'new' })
      this.#enterSnapshot(undefined)
    } else {
      const text = stored ?? this.#opts.from ?? 'now'
      if (text !== 'now') {
        const seq = text === 'start' ? 0n : parseCursor(text)
        if (seq === undefined) throw new TypeError(`the cursor store holds ${stored}, which is not an id or a decimal seq`)
        this.#begin(seq, stored === undefined)
      }
    }
    this.#poll = setInterval(() => void this.#pollHead(), this.#opts.headPollMs ?? DEFAULTS.headPollMs)
    // in Node the poll alone does not keep a process alive; a browser's timers have no unref
    ;(this.#poll as { unref?: () => void }).unref?.()
  }

  /** Fixes the starting position; a fresh one is saved, so a restart before the first event resumes there. */
  #begin(seq: bigint, fresh: boolean): void {
    this.#window = new AckWindow(seq)
    this.#received = seq
    this.#delivered = seq
    if (fresh) this.#save(idOf(seq))
  }

  /** From here the stream is a snapshot's, resumed after `token` or from its beginning. */
  #enterSnapshot(token: string | undefined): void {
    this.#snapshot = { token }
    this.#window = undefined
    this.#current = undefined
    this.#received = { token }
  }

  /** Hands one item to the consumer, or absorbs it. */
  async #take(item: Item): Promise<FollowEvent | undefined> {
    switch (item.kind) {
      case 'file':
        await this.#opts.snapshot!.onFile(item.file)
        this.#snapshot!.token = item.file.cursor
        this.#save(item.file.cursor)
        return undefined
      case 'restart':
        // a crash before the next frame resumes at the last token saved, which the homeserver
        // can no more resume than this stream could (its floor only rises): it restarts again
        this.#snapshot!.token = undefined
        await this.#opts.snapshot!.onStart({ cause: 'restart', reset: item.info })
        return undefined
      case 'synced':
        await this.#opts.snapshot!.onSynced?.({ id: idOf(item.seq), seq: String(item.seq), files: item.files })
        this.#snapshot = undefined
        this.#window = new AckWindow(item.seq)
        this.#delivered = item.seq
        this.#save(idOf(item.seq))
        this.#checkLive()
        return undefined
      case 'reset':
        if (this.#opts.onReset === 'snapshot') return this.#resnapshot(item.info)
        if (this.#opts.onReset === undefined) throw new ResetError(item.info)
        await this.#opts.onReset(item.info)
        // Handled: nothing below the floor will ever come, so the cursor may pass it.
        this.#pass(BigInt(item.info.floor) - 1n)
        return undefined
      case 'mark':
        this.#pass(item.seq)
        return undefined
      case 'event': {
        const window = this.#window!
        const entry = window.deliver(item.seq)
        this.#delivered = item.seq
        this.#checkLive()
        const ack = (late = false) => this.#ack(window, entry, late)
        if (this.#opts.ack !== 'explicit') this.#current = () => ack(true)
        return { ...item.event, ack: () => ack() }
      }
    }
  }

  /**
   * The log no longer holds what comes after the cursor: leave this stream and take a new
   * snapshot. The stored cursor stays where it was until the first frame is processed, so a
   * crash before that meets the same reset again.
   */
  async #resnapshot(reset: ResetInfo): Promise<undefined> {
    this.#reader?.cancel()
    this.#reader = undefined
    this.#queue.length = 0
    this.#reopenNow = true
    this.#enterSnapshot(undefined)
    for (const wake of this.#ackWaiters.splice(0)) wake() // acks of the events before it no longer count
    await this.#opts.snapshot!.onStart({ cause: 'reset', reset })
    return undefined
  }

  #pass(seq: bigint): void {
    if (seq > this.#delivered) this.#delivered = seq
    if (this.#window!.pass(seq)) this.#save(idOf(this.#window!.cursor))
    this.#checkLive()
  }

  /**
   * `late`: the auto ack of the event in hand, honoured after an abort too, because its body
   * did finish. An ack of an event handed out before a new snapshot does nothing.
   */
  #ack(window: AckWindow, entry: Entry, late = false): void {
    if ((this.#closing !== undefined && !late) || window !== this.#window) return
    if (window.ack(entry)) this.#save(idOf(window.cursor))
    for (const wake of this.#ackWaiters.splice(0)) wake()
  }

  /** Reads more of the stream into the queue, opening it first when needed. */
  async #fill(): Promise<void> {
    if (this.#reader === undefined) return this.#connect()
    const more = await this.#reader.pump(this.#opts.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs)
    if (more !== true) this.#dropped = more
    this.#retryMs = this.#reader?.retryMs ?? this.#retryMs
    const last = this.#queue[this.#queue.length - 1]
    // the stream said something: the next drop starts its backoff from the beginning
    if (more === true && last !== undefined) this.#attempt = 0
    if (last !== undefined) {
      this.#received = positionAfter(last)
      if (typeof this.#received === 'bigint' && this.#received > this.#head) this.#head = this.#received
    }
    if (more !== true) {
      this.#reader?.cancel()
      this.#reader = undefined
    }
  }

  /** Opens the stream after the last received position, waiting between failed attempts. */
  async #connect(): Promise<void> {
    const signal = this.#stop.signal
    let failure = this.#dropped
    this.#dropped = undefined
    // a stream that opened and dropped before it said anything counts as a failed attempt,
    // so a server that accepts and hangs up at once meets a growing backoff
    if (failure !== undefined) this.#attempt++
    while (!signal.aborted) {
      this.#setState('connecting')
      if (this.#connections++ > 0 && !this.#reopenNow) {
        const { baseMs = this.#retryMs ?? DEFAULTS.baseMs, maxMs = DEFAULTS.maxMs } = this.#opts.backoff ?? {}
        const delayMs = backoffDelay({ baseMs, maxMs, jitter: 1 }, this.#attempt)
        if (failure !== undefined) this.#opts.onRetry?.({ attempt: this.#attempt, delayMs, error: failure })
        await sleep(delayMs, signal)
        if (signal.aborted) return
      }
      this.#reopenNow = false
      try {
        const head = await readHead(this.#ep, signal)
        if (head > this.#head) this.#head = head
        if (this.#window === undefined && this.#snapshot === undefined) this.#begin(head, true) // from 'now'
        const res = await openSubscribe(this.#ep, this.#opts.filters ?? [], this.#received!, signal)
        this.#reader = new FrameReader(res.body!, this.#queue, this.#received!, this.#opts.maxFrameBytes ?? DEFAULTS.maxFrameBytes)
        this.#liveAt = head
        this.#setState('catching-up')
        this.#checkLive()
        return
      } catch (err) {
        if (signal.aborted) return
        if (!(err instanceof RetryableError)) throw err
        failure = err
        this.#attempt++
      }
    }
  }

  /** Live once past the head seen at connect; never before a snapshot's `synced`. */
  #checkLive(): void {
    if (this.#state === 'catching-up' && this.#snapshot === undefined && this.#delivered >= this.#liveAt) this.#setState('live')
  }

  #setState(state: FollowState): void {
    if (this.#state === state || this.#state === 'closed') return
    this.#state = state
    this.#opts.onState?.(state)
  }

  async #pollHead(): Promise<void> {
    try {
      const head = await readHead(this.#ep, this.#stop.signal)
      if (head > this.#head) this.#head = head
    } catch {
      // lag is a hint; the stream itself reports failures
    }
  }

  /** Saves in order, one save at a time, always the newest position once the previous save is done. */
  #save(position: string): void {
    this.#toSave = position
    this.#saving ??= this.#drainSaves()
  }

  async #drainSaves(): Promise<void> {
    await null // let the caller's `??=` store this promise before it can settle
    try {
      while (this.#toSave !== undefined && this.#toSave !== this.#saved) {
        const id = this.#toSave
        await this.#store.save(id)
        this.#saved = id
      }
    } catch (err) {
      this.#saveError ??= err
    } finally {
      this.#saving = undefined
    }
  }
}

/** Where a stream resumes once `item` was received. */
function positionAfter(item: Item): Position {
  switch (item.kind) {
    case 'event':
    case 'mark':
    case 'synced':
      return item.seq
    case 'reset':
      return BigInt(item.info.floor) - 1n
    case 'file':
      return { token: item.file.cursor }
    case 'restart':
      return { token: undefined }
  }
}

/**
 * One default cursor name per homeserver and filter set, so two followers never share one.
 * The hash is 64-bit FNV-1a over the UTF-16 code units: it only tells names apart, and needs
 * nothing a browser lacks.
 */
export function defaultCursorFile(url: string, filters: readonly string[]): string {
  const text = JSON.stringify([url, [...filters].sort()])
  let hash = 0xcbf29ce484222325n
  for (let i = 0; i < text.length; i++) hash = ((hash ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n) & 0xffffffffffffffffn
  return `.hearth-cursor-${hash.toString(16).padStart(16, '0')}`
}
