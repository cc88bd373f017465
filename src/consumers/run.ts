import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import type { LogReader } from '../feed/reader.js'
import type { ConsumerRecord, Outstanding, Store } from '../kv/store.js'
import { claim, nextDeadline, pruned, read, release, room, settle, acknowledge, type Want } from './ledger.js'
import type { ConsumerStream } from './stream.js'
import type { ConsumerUpdates } from './updates.js'
import type { ConsumerObserver } from './observer.js'
import { matcherOf, type Matcher } from './matcher.js'

/** What a run needs of its process. */
export interface RunDeps {
  store: Store
  events: EventLog
  updates: ConsumerUpdates
  /** a reader of the log after `after`, with this consumer's filters and `/priv/` rule */
  reader(matcher: Matcher, after: number): LogReader
  observer: ConsumerObserver
  /** with several processes on the store: how often to look at the record for what others changed (acks, ended holds) */
  pollMs?: number
  /** the run has no stream left */
  idle(run: ConsumerRun): void
}

interface ReadAhead {
  from: number
  to: number
  events: HearthEvent[]
  reset?: { requested: number; floor: number }
}

/**
 * One consumer's delivery in this process, while it has streams open here: reads the log
 * after the stored cursor (a LogReader, outside any lock), then in one transaction of the
 * record (ConsumerUpdates) takes what it read, ends the holds whose ack wait ran out, and
 * leases events to its streams, each up to its share; then writes them out. Other processes
 * may run the same consumer at once: the record, changed only under its lock, is what keeps
 * one holder per event. A step runs when something may have changed — an event appended, an
 * ack, a stream opened, closed or drained, the soonest hold's deadline — and, with several
 * processes, every `pollMs`.
 */
export class ConsumerRun {
  readonly owner: string
  readonly id: string
  readonly #deps: RunDeps
  /** what it carries: its filters and `/priv/` rule, fixed for its life */
  readonly matcher: Matcher
  readonly streams: ConsumerStream[] = []
  record: ConsumerRecord
  #reader: LogReader | undefined
  /** events read and not yet done, so that a redelivery needs no read */
  readonly #cache = new Map<number, HearthEvent>()
  #running = false
  #again = false
  #timer: NodeJS.Timeout | undefined
  #stopped = false
  #turn = 0

  constructor(record: ConsumerRecord, deps: RunDeps) {
    this.owner = record.owner
    this.id = record.id
    this.record = record
    this.#deps = deps
    this.matcher = matcherOf(record)
  }

  add(stream: ConsumerStream): void {
    this.streams.push(stream)
    stream.sse.onClose(() => this.#remove(stream))
    this.wake()
  }

  /** Something may have changed: step soon (once, however often it is called meanwhile). */
  wake(): void {
    if (this.#stopped) return
    if (this.#running) {
      this.#again = true
      return
    }
    this.#running = true
    void this.#loop()
  }

  /** Ends every stream of the consumer here (deleted, or the server stops). */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#reader?.close()
    for (const s of [...this.streams]) s.end()
  }

  async #loop(): Promise<void> {
    try {
      do {
        this.#again = false
        if (this.streams.length === 0) break
        await this.#step()
      } while (this.#again && !this.#stopped)
    } catch {
      // the store failed: try again at the next wake or poll
    } finally {
      this.#running = false
      this.#schedule()
    }
  }

  #schedule(): void {
    clearTimeout(this.#timer)
    if (this.#stopped || this.streams.length === 0) return
    const now = Date.now()
    let at = nextDeadline(this.record)
    if (this.#deps.pollMs !== undefined) at = Math.min(at ?? Infinity, now + this.#deps.pollMs)
    if (at === undefined) return
    this.#timer = setTimeout(() => this.wake(), Math.max(0, at - now) + 1)
    this.#timer.unref()
  }

  async #step(): Promise<void> {
    const ahead = room(this.record) > 0 && this.record.cursor < this.#deps.events.head ? await this.#readAhead() : undefined
    const share = Math.max(1, Math.ceil(this.record.definition.maxPending / this.streams.length))
    // each step starts the turns at the next stream, so single events spread over all of them
    const first = this.#turn++ % this.streams.length
    const order = [...this.streams.slice(first), ...this.streams.slice(0, first)]
    const wants: Want[] = order.map((s) => ({ holder: s.holder, n: s.room(share) }))
    if (ahead === undefined && wants.every((w) => w.n === 0) && this.#deps.pollMs === undefined && !this.#settles()) return
    const now = Date.now()
    const done = await this.#deps.updates.apply(this.owner, this.id, (stored) => {
      const took = ahead === undefined ? stored : read(stored, ahead.from, ahead.to, ahead.events, ahead.reset)
      const settled = settle(took, now)
      const claimed = claim(settled.record, wants, now + stored.definition.ackWaitMs)
      return { record: claimed.record, result: { claimed: claimed.claimed, dead: settled.dead.length, reset: took !== stored && ahead?.reset } }
    })
    if (done === undefined) return this.stop() // deleted
    this.took(done.record)
    if (ahead !== undefined && done.record.cursor === ahead.to) for (const ev of ahead.events) this.#cache.set(ev.seq, ev)
    const { claimed, dead, reset } = done.result
    if (dead > 0) this.#deps.observer.dead('maxDeliver', dead)
    if (reset) for (const s of this.streams) s.reset(reset.requested, reset.floor)
    if (claimed.length > 0) await this.#deliver(claimed)
    // more to read, or streams with room while events wait: go on
    if (room(this.record) > 0 && this.record.cursor < this.#deps.events.head) this.#again = true
  }

  /** Whether a hold ended and something is waiting for `settle`. */
  #settles(): boolean {
    const at = nextDeadline(this.record)
    return at !== undefined && at <= Date.now()
  }

  /** A page of the log after the stored cursor, up to the record's room, read outside the lock. */
  async #readAhead(): Promise<ReadAhead | undefined> {
    const from = this.record.cursor
    if (this.#reader === undefined || this.#reader.cursor !== from) {
      this.#reader?.close()
      this.#reader = this.#deps.reader(this.matcher, from)
    }
    const reader = this.#reader
    const max = room(this.record)
    const events: HearthEvent[] = []
    let reset: ReadAhead['reset']
    await reader.step({
      event: (ev) => events.length < max && events.push(ev) > 0,
      reset: (requested, floor) => void (reset = { requested, floor }),
    })
    reader.pause()
    if (reader.cursor === from && reset === undefined) return undefined
    return { from, to: reader.cursor, events, reset }
  }

  /** Takes a stored record as the latest: each stream's holds, and the cache trimmed to what is outstanding. */
  took(record: ConsumerRecord): void {
    this.record = record
    const held = new Map<string, number>()
    const seqs = new Set<number>()
    for (const e of record.outstanding) {
      seqs.add(e.seq)
      if (e.holder !== undefined) held.set(e.holder, (held.get(e.holder) ?? 0) + 1)
    }
    for (const s of this.streams) s.held = held.get(s.holder) ?? 0
    for (const seq of this.#cache.keys()) if (!seqs.has(seq)) this.#cache.delete(seq)
  }

  /** Writes the leased events to their streams; with automatic acks, acks them once the socket took them. */
  async #deliver(claimed: Outstanding[]): Promise<void> {
    const events = await this.#events(claimed)
    const byHolder = new Map<string, number[]>()
    let redelivered = 0
    const orphans = new Set<string>()
    for (const e of claimed) {
      const ev = events.get(e.seq)
      const stream = this.streams.find((s) => s.holder === e.holder)
      if (stream === undefined || stream.closed) orphans.add(e.holder!)
      if (ev === undefined || stream === undefined) continue
      stream.deliver(ev, e.deliveries)
      if (stream.sse.backedUp) void stream.sse.drained().then(() => this.wake())
      if (e.deliveries > 1) redelivered++
      byHolder.set(e.holder!, [...(byHolder.get(e.holder!) ?? []), e.seq])
    }
    this.#deps.observer.delivered(claimed.length, redelivered)
    // leased to a stream that ended meanwhile: out again at once
    for (const holder of orphans) void this.#release(holder)
    if (this.record.definition.ack !== 'automatic') return
    for (const [holder, seqs] of byHolder) {
      const stream = this.streams.find((s) => s.holder === holder)!
      void stream.sse.drained().then(async () => {
        if (stream.closed) return
        const done = await this.#deps.updates.apply(this.owner, this.id, (r) => {
          const a = acknowledge(r, { ack: seqs })
          return { record: a.record, result: a.acked }
        })
        if (done === undefined) return
        this.#deps.observer.acked(done.result)
        this.took(done.record)
        this.wake()
      }).catch(() => {})
    }
  }

  /** The events of these deliveries: from the cache, else from the log; those pruned meanwhile leave the record. */
  async #events(claimed: Outstanding[]): Promise<Map<number, HearthEvent>> {
    const out = new Map<number, HearthEvent>()
    const gone = new Set<number>()
    let floor = 0
    for (const e of claimed) {
      const cached = this.#cache.get(e.seq)
      if (cached !== undefined) {
        out.set(e.seq, cached)
        continue
      }
      const page = await this.#deps.store.readLog(e.seq - 1, e.seq, 1)
      const ev = page.events[0]
      if (ev !== undefined) {
        this.#cache.set(e.seq, ev)
        out.set(e.seq, ev)
      } else if (e.seq < page.floor) {
        gone.add(e.seq)
        floor = page.floor
      }
    }
    if (gone.size > 0) {
      const done = await this.#deps.updates.apply(this.owner, this.id, (r) => ({ record: pruned(r, gone, floor), result: r.reset }))
      if (done !== undefined) {
        this.took(done.record)
        const reset = done.record.reset!
        for (const s of this.streams) s.reset(reset.requested, reset.floor)
      }
    }
    return out
  }

  #remove(stream: ConsumerStream): void {
    const i = this.streams.indexOf(stream)
    if (i === -1) return
    this.streams.splice(i, 1)
    // what it held goes out again at once, to another stream
    void this.#release(stream.holder)
    if (this.streams.length === 0) {
      clearTimeout(this.#timer)
      this.#deps.idle(this)
    }
  }

  async #release(holder: string): Promise<void> {
    try {
      const done = await this.#deps.updates.apply(this.owner, this.id, (r) => ({ record: release(r, holder), result: undefined }))
      if (done !== undefined) this.took(done.record)
      this.wake()
    } catch {
      // the store failed: the holds end at their deadline
    }
  }
}
