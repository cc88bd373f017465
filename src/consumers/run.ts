import type { FastifyBaseLogger } from 'fastify'
import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import type { LogReader } from '../feed/reader.js'
import type { ConsumerRecord, Outstanding, Store } from '../kv/store.js'
import { claim, nextDeadline, pruned, read, release, room, settle, acknowledge, tally, type Want } from './ledger.js'
import { deliveryFrame, type ConsumerStream } from './stream.js'
import type { ConsumerUpdates, Rider } from './updates.js'
import type { ConsumerObserver } from './observer.js'
import { matcherOf, type Matcher } from './matcher.js'
import { EventCache } from './event-cache.js'

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
  log: FastifyBaseLogger
}

/** Events done that the cache of a run may still hold, at most: it is trimmed when it holds more. */
const CACHE_SLACK = 1024

/** Users whose one string a run keeps, at most (then it starts over). */
const MAX_USERS_KEPT = 10_000

/** What a lease step did: the events leased, and how many became dead. */
interface Leased {
  claimed: Outstanding[]
  dead: number
}

/** Events of the log read after the stored cursor `from`, up to `to`, not yet taken into the record. */
interface ReadAhead {
  from: number
  to: number
  events: HearthEvent[]
  /** their seqs and users, each user one string: `claim` sets users apart by the thousand at every step */
  entries: { seq: number; user: string }[]
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
  /** what was read ahead of the stored cursor and not yet taken: a step or a rider takes it into the record */
  #ahead: ReadAhead | undefined
  /** events read and not yet done (and at most CACHE_SLACK done), so that a redelivery needs no read */
  readonly #cache = new EventCache()
  /** one string per user of the events read */
  readonly #users = new Map<string, string>()
  #running = false
  #again = false
  #timer: NodeJS.Timeout | undefined
  #stopped = false
  #turn = 0
  /** a step found changes on their way and left its work to the next group's rider: the next record stored, or the queue's end, wakes the run */
  #deferred = false
  /** the run waits for the end of its consumer's queue (one wait at a time, however many steps defer meanwhile) */
  #watching = false

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

  /** A step that left its work to a rider steps again. */
  #resume(): void {
    if (!this.#deferred) return
    this.#deferred = false
    this.wake()
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
    } catch (err) {
      // the store failed: try again at the next wake or poll
      this.#deps.log.warn({ err }, 'a consumer delivery step failed; it is tried again')
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
    const ahead = room(this.record) > 0 ? await this.#readAhead() : undefined
    const wants = this.#wants()
    if (ahead === undefined && wants.every((w) => w.n === 0) && this.#deps.pollMs === undefined && !this.#settles()) return
    // changes of the record are being stored or wait their turn: the rider of the next group
    // takes what was read and leases, in the commit of the acks, and each stored group wakes
    // the run again, so a step commits alone only when nothing else is on its way
    if (ahead?.reset === undefined && this.#deps.updates.busy(this.owner, this.id)) {
      this.#deferred = true
      if (!this.#watching) {
        // a group that fails stores nothing: the queue's end wakes the run then
        this.#watching = true
        this.#deps.updates.whenIdle(this.owner, this.id, () => {
          this.#watching = false
          this.#resume()
        })
      }
      return
    }
    const now = Date.now()
    const done = await this.#deps.updates.apply(this.owner, this.id, (stored) => {
      const took = ahead === undefined ? stored : read(stored, ahead.from, ahead.to, ahead.entries, ahead.reset)
      return this.#lease(took, wants, now)
    }, true)
    if (done === undefined) return this.stop() // deleted
    await this.#leased(done.record, done.result)
    // more to read, or streams with room while events wait: go on
    if (room(this.record) > 0 && this.record.cursor < this.#deps.events.head) this.#again = true
  }

  /**
   * The changes to ride along with a group of changes made by others (acks, releases): the
   * events read ahead are taken into the record and the events the group lets go are leased,
   * in the same commit (ConsumerUpdates). A reset is left to a step.
   */
  rider(): Rider<Leased> | undefined {
    if (this.#stopped || this.streams.length === 0) return undefined
    const wants = this.#wants()
    if (wants.every((w) => w.n === 0)) return undefined
    const now = Date.now()
    const ahead = this.#ahead !== undefined && this.#ahead.reset === undefined && this.#ahead.to > this.#ahead.from ? this.#ahead : undefined
    return {
      change: (stored) => this.#lease(ahead === undefined ? stored : read(stored, ahead.from, ahead.to, ahead.entries), wants, now),
      stored: (record, result) => void this.#leased(record, result).catch((err: unknown) => this.#deps.log.warn({ err }, 'a consumer delivery failed')),
    }
  }

  /** How many events each stream may take now, each up to its share, the first turn going round from step to step. */
  #wants(): Want[] {
    const share = Math.max(1, Math.ceil(this.record.definition.maxPending / this.streams.length))
    // each step starts the turns at the next stream, so single events spread over all of them
    const first = this.#turn++ % this.streams.length
    const order = [...this.streams.slice(first), ...this.streams.slice(0, first)]
    return order.map((s) => ({ holder: s.holder, n: s.room(share) }))
  }

  /** Ends the holds whose ack wait ran out and leases events to the streams that want them. */
  #lease(stored: ConsumerRecord, wants: readonly Want[], now: number): { record: ConsumerRecord; result: Leased } {
    const settled = settle(stored, now)
    const claimed = claim(settled.record, wants, now + stored.definition.ackWaitMs)
    return { record: claimed.record, result: { claimed: claimed.claimed, dead: settled.dead.length } }
  }

  /** Once stored: the record taken, the dead counted, the leased events written out. */
  async #leased(record: ConsumerRecord, { claimed, dead }: Leased): Promise<void> {
    this.took(record)
    if (dead > 0) this.#deps.observer.dead('maxDeliver', dead)
    if (claimed.length > 0) await this.#deliver(claimed)
  }

  /** Whether a hold may have ended (its deadline, or a bound before it, passed) and something may be waiting for `settle`. */
  #settles(): boolean {
    const at = nextDeadline(this.record)
    return at !== undefined && at <= Date.now()
  }

  /**
   * The events read ahead of the stored cursor, topped up from the log to the record's room,
   * read outside the lock; undefined when there is nothing to take.
   */
  async #readAhead(): Promise<ReadAhead | undefined> {
    const cursor = this.record.cursor
    const kept = this.#ahead?.from === cursor ? this.#ahead : { from: cursor, to: cursor, events: [], entries: [] }
    const max = room(this.record)
    let ahead: ReadAhead = kept
    if (kept.events.length < max && kept.reset === undefined && kept.to < this.#deps.events.head) {
      if (this.#reader === undefined || this.#reader.cursor !== kept.to) {
        this.#reader?.close()
        this.#reader = this.#deps.reader(this.matcher, kept.to)
      }
      const reader = this.#reader
      const events: HearthEvent[] = []
      let reset: ReadAhead['reset']
      await reader.step({
        event: (ev) => kept.events.length + events.length < max && events.push(ev) > 0,
        reset: (requested, floor) => void (reset = { requested, floor }),
      })
      reader.pause()
      // a commit may have taken the front of what was kept meanwhile: what was read follows what is left
      ahead = this.#ahead?.to === kept.to ? this.#ahead : kept
      if (reset !== undefined && ahead.to > ahead.from) {
        // events kept from before a pruned stretch go first, alone: the reset and what follows it
        // are read again once they are taken, so that a reset always comes first in what it
        // holds, and never rides with events before it
        reader.close()
        if (this.#reader === reader) this.#reader = undefined
      } else if (reset !== undefined) {
        // a new object: a rider holding the old one must not take these events without their reset
        ahead = { from: ahead.from, to: reader.cursor, events, entries: this.#entries(events), reset }
      } else if (reader.cursor !== kept.to) {
        // grown in place, `to` with its events: whoever holds it sees the events after `from` up to `to`, either way
        for (const ev of events) ahead.events.push(ev)
        for (const e of this.#entries(events)) ahead.entries.push(e)
        ahead.to = reader.cursor
      }
    }
    this.#ahead = ahead
    return ahead.to > ahead.from || ahead.reset !== undefined ? ahead : undefined
  }

  /** Seqs and users of events read, each user one string. */
  #entries(events: readonly HearthEvent[]): { seq: number; user: string }[] {
    if (this.#users.size > MAX_USERS_KEPT) this.#users.clear()
    return events.map((ev) => {
      const user = this.#users.get(ev.user) ?? (this.#users.set(ev.user, ev.user), ev.user)
      return { seq: ev.seq, user }
    })
  }

  /**
   * The record's cursor moved: the events read ahead up to it were taken (by a step or a
   * rider here, or by another process: what lies after a cursor depends on the log alone) and
   * are kept for their delivery; the rest stays read ahead. A cursor moved back, or past what
   * was read, leaves nothing read ahead.
   */
  #taken(cursor: number): void {
    const ahead = this.#ahead
    if (ahead === undefined || cursor === ahead.from) return
    if (cursor < ahead.from || cursor > ahead.to) return void (this.#ahead = undefined)
    let n = 0
    while (n < ahead.events.length && ahead.events[n]!.seq <= cursor) this.#cache.add(ahead.events[n++]!)
    this.#ahead = { from: cursor, to: ahead.to, events: ahead.events.slice(n), entries: ahead.entries.slice(n) }
  }

  /**
   * Takes a stored record as the latest: each stream's holds, and the cache trimmed once it
   * holds CACHE_SLACK events done. A reset it holds that the one before did not goes to every
   * stream here, whoever stored it (a step here, an outstanding event found pruned, another
   * instance), before the events leased with it.
   */
  took(record: ConsumerRecord): void {
    if (record === this.record) return
    const before = this.record.reset
    const reset = record.reset
    if (reset !== undefined && (before?.requested !== reset.requested || before.floor !== reset.floor)) {
      for (const s of this.streams) s.reset(reset.requested, reset.floor)
    }
    this.record = record
    this.#taken(record.cursor)
    this.#resume()
    const { held } = tally(record)
    for (const s of this.streams) s.held = held.get(s.holder) ?? 0
    // events done leave the cache a batch at a time, not at every record: it holds at most CACHE_SLACK more than is outstanding
    if (this.#cache.size > record.outstanding.length + CACHE_SLACK) this.#cache.keep(record.outstanding)
  }

  /** Writes the leased events to their streams, each stream's in one write; with automatic acks, acks them once the socket took them. */
  async #deliver(claimed: Outstanding[]): Promise<void> {
    const events = await this.#events(claimed)
    const batches = new Map<ConsumerStream, { frames: string[]; seqs: number[] }>()
    let redelivered = 0
    const orphans = new Set<string>()
    for (const [i, e] of claimed.entries()) {
      const ev = events[i]
      const stream = this.streams.find((s) => s.holder === e.holder)
      if (stream === undefined || stream.closed) orphans.add(e.holder!)
      if (ev === undefined || stream === undefined) continue
      let batch = batches.get(stream)
      if (batch === undefined) batches.set(stream, (batch = { frames: [], seqs: [] }))
      batch.frames.push(deliveryFrame(ev, e.deliveries))
      batch.seqs.push(e.seq)
      if (e.deliveries > 1) redelivered++
    }
    for (const [stream, { frames }] of batches) {
      stream.deliver(frames)
      if (stream.sse.backedUp) void stream.sse.drained().then(() => this.wake())
    }
    this.#deps.observer.delivered(claimed.length, redelivered)
    // leased to a stream that ended meanwhile: out again at once
    for (const holder of orphans) void this.#release(holder)
    if (this.record.definition.ack !== 'automatic') return
    for (const [stream, { seqs }] of batches) {
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
      }).catch((err: unknown) => this.#deps.log.warn({ err }, 'storing the automatic acks of a consumer failed; they go out again'))
    }
  }

  /** The events of these deliveries, in their order (none where pruned): from the cache, else from the log; those pruned meanwhile leave the record. */
  async #events(claimed: Outstanding[]): Promise<(HearthEvent | undefined)[]> {
    const out: (HearthEvent | undefined)[] = []
    const gone = new Set<number>()
    let floor = 0
    for (const e of claimed) {
      const cached = this.#cache.get(e.seq)
      out.push(cached)
      if (cached !== undefined) continue
      const page = await this.#deps.store.readLog(e.seq - 1, e.seq, 1)
      const ev = page.events[0]
      if (ev !== undefined) {
        this.#cache.add(ev)
        out[out.length - 1] = ev
      } else if (e.seq < page.floor) {
        gone.add(e.seq)
        floor = page.floor
      }
    }
    if (gone.size > 0) {
      const done = await this.#deps.updates.apply(this.owner, this.id, (r) => ({ record: pruned(r, gone, floor), result: undefined }))
      if (done !== undefined) this.took(done.record)
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
    } catch (err) {
      this.#deps.log.warn({ err }, "releasing a consumer stream's holds failed; they end at their deadline")
    }
  }
}
