import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import type { FeedEngine } from '../feed/engine.js'
import type { SseStream } from '../feed/sse.js'
import type { ConsumerRecord, Store } from '../kv/store.js'
import { tally } from './ledger.js'
import { ConsumerRun } from './run.js'
import { ConsumerStream } from './stream.js'
import { ConsumerUpdates } from './updates.js'
import type { ConsumerObserver } from './observer.js'

export interface HubDeps {
  store: Store
  events: EventLog
  feed: FeedEngine
  observer: ConsumerObserver
  keepaliveMs: number
  /** with several processes on the store: how often runs and `acked` waits look at records others change */
  pollMs?: number
  /** where delivery failures are told */
  log: FastifyBaseLogger
}

/**
 * This process's side of durable consumers: one ConsumerRun per consumer with streams open
 * here, woken by new events, acks and sign-outs; the grouped record changes every route and
 * run goes through (ConsumerUpdates); and waits for a record to change (`acked`).
 */
export class ConsumerHub {
  readonly updates: ConsumerUpdates
  readonly #deps: HubDeps
  readonly #runs = new Map<string, ConsumerRun>()
  readonly #waiters = new Map<string, Set<() => void>>()
  /** names this process's lease holders apart from every other's: 72 random bits, short because every lease stores it */
  readonly #instance = randomBytes(9).toString('base64url')
  #streams = 0
  readonly #unlisten: () => void
  readonly #timer: NodeJS.Timeout

  constructor(deps: HubDeps) {
    this.#deps = deps
    this.updates = new ConsumerUpdates(deps.store, deps.observer, (record) => this.#stored(record), (owner, id) => this.#runs.get(keyOf(owner, id))?.rider())
    this.#unlisten = deps.events.onAppend((events) => this.#appended(events))
    // each keepalive also steps every run, so its cursor passes events that match none of its
    // filters (which wake nothing) and its lag comes down
    this.#timer = setInterval(() => {
      for (const run of this.#runs.values()) {
        for (const s of run.streams) s.keepalive()
        run.wake()
      }
    }, deps.keepaliveMs)
    this.#timer.unref()
  }

  /** Opens a worker's stream on `sse`, with the session that opened it. */
  open(record: ConsumerRecord, sse: SseStream, session: string): ConsumerStream {
    const stream = new ConsumerStream(sse, `${this.#instance}/${++this.#streams}`, session)
    const key = keyOf(record.owner, record.id)
    let run = this.#runs.get(key)
    if (run === undefined) {
      run = new ConsumerRun(record, {
        ...this.#deps,
        updates: this.updates,
        reader: (matcher, after) => this.#deps.feed.reader({ after, ...matcher }),
        idle: (r) => this.#runs.get(key) === r && this.#runs.delete(key),
      })
      this.#runs.set(key, run)
    }
    run.add(stream)
    return stream
  }

  /** How many streams are open on a consumer here. */
  streams(owner: string, id: string): number {
    return this.#runs.get(keyOf(owner, id))?.streams.length ?? 0
  }

  /** A route changed the record (acks, reset): its run here steps again. */
  changed(owner: string, id: string): void {
    this.#runs.get(keyOf(owner, id))?.wake()
  }

  /** The consumer is gone: its streams here end. */
  deleted(owner: string, id: string): void {
    const key = keyOf(owner, id)
    this.#runs.get(key)?.stop()
    this.#runs.delete(key)
    this.#wakeWaiters(key)
  }

  /** Signing out ends the consumer streams the session opened; the consumers stay. */
  endSession(secret: string): void {
    for (const run of [...this.#runs.values()]) for (const s of [...run.streams]) if (s.session === secret) s.end()
  }

  /** Resolves when this process stores a change of the record, or after `ms` (at most the poll interval with several processes). */
  changeOrTimeout(owner: string, id: string, ms: number): Promise<void> {
    const key = keyOf(owner, id)
    const wait = Math.min(ms, this.#deps.pollMs ?? ms)
    return new Promise((resolve) => {
      const set = this.#waiters.get(key) ?? this.#waiters.set(key, new Set()).get(key)!
      const done = () => {
        clearTimeout(timer)
        set.delete(done)
        if (set.size === 0 && this.#waiters.get(key) === set) this.#waiters.delete(key)
        resolve()
      }
      const timer = setTimeout(done, Math.max(0, wait))
      set.add(done)
    })
  }

  /** For metrics: consumers with streams open here, those streams, and their events out unacked. */
  stats(): { consumers: number; streams: number; pending: number } {
    let streams = 0
    let pending = 0
    for (const run of this.#runs.values()) {
      streams += run.streams.length
      pending += tally(run.record).pending
    }
    return { consumers: this.#runs.size, streams, pending }
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#unlisten()
    for (const run of [...this.#runs.values()]) run.stop()
    this.#runs.clear()
  }

  #stored(record: ConsumerRecord): void {
    const key = keyOf(record.owner, record.id)
    this.#runs.get(key)?.took(record)
    this.#wakeWaiters(key)
  }

  #wakeWaiters(key: string): void {
    for (const done of [...(this.#waiters.get(key) ?? [])]) done()
  }

  #appended(events: readonly HearthEvent[]): void {
    for (const run of this.#runs.values()) {
      const { canSee, accepts } = run.matcher
      if (events.some((ev) => canSee(ev) && accepts(ev))) run.wake()
    }
  }
}

const keyOf = (owner: string, id: string): string => `${owner}/${id}`
