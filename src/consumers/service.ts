import type { EventLog } from '../events/event-log.js'
import { dataOf } from '../events/stored.js'
import type { HearthEvent } from '../events/event.js'
import { fail } from '../errors.js'
import type { Viewer } from '../feed/visibility.js'
import { formatCapabilities } from '../auth/capabilities.js'
import type { ConsumerDefinition, ConsumerRecord, Store } from '../kv/store.js'
import { idOf } from 'hearth-homeserver-client/id'
import type { CreateRate } from './create-rate.js'
import { position, sameDefinition } from './definition.js'
import type { ConsumerHub } from './hub.js'
import { acknowledge, ackFloor, reposition, type Acks } from './ledger.js'
import { checkReadable, matcherOf } from './matcher.js'
import type { ConsumerObserver } from './observer.js'
import { processed, stateOf, type ConsumerState } from './view.js'

/** How long a user whose consumers are at MAX_CONSUMERS_PER_USER is told to wait. */
const FULL_RETRY_S = 60

export interface ConsumerServiceDeps {
  store: Store
  events: EventLog
  hub: ConsumerHub
  rate: CreateRate
  maxPerUser: number
  observer: ConsumerObserver
}

/** A creation refused for now: come back in `retryAfter` seconds. */
export interface Refused {
  retryAfter: number
  message: string
}

/**
 * What the consumer routes do (SPEC §12), given an owner the route has checked: create, read,
 * delete, acknowledge, move, and the questions `dead` and `acked`. Changes of a record go
 * through the hub's grouped updates, and wake its runs in this process.
 */
export class ConsumerService {
  readonly #d: ConsumerServiceDeps

  constructor(deps: ConsumerServiceDeps) {
    this.#d = deps
  }

  state(record: ConsumerRecord): ConsumerState {
    return stateOf(record, this.#d.events.head, this.#d.hub.streams(record.owner, record.id))
  }

  /**
   * 'created', 'exists' (the same definition), or a refusal for now; ConsumerExists when the id
   * has another definition; 403 first, when `session` (the owner's, whose capabilities a new
   * consumer keeps) may not use the one there (`checkReadable`): what it may not use, it may
   * not probe for its definition either.
   */
  async create(owner: string, session: Viewer, id: string, definition: ConsumerDefinition): Promise<{ created: boolean; record: ConsumerRecord } | Refused> {
    const capabilities = formatCapabilities(session.capabilities)
    const same = (record: ConsumerRecord) => {
      checkReadable(record, session)
      if (!sameDefinition(record.definition, definition)) fail('ConsumerExists', 'A consumer with this id exists with another definition')
      return { created: false, record }
    }
    const existing = await this.#d.store.consumer(owner, id)
    if (existing !== undefined) return same(existing)
    const wait = this.#d.rate.take(owner)
    if (wait !== undefined) return { retryAfter: wait, message: 'Too many consumers created lately (CONSUMER_CREATE_RATE)' }
    const { head, floor } = this.#d.events
    const record: ConsumerRecord = {
      owner, id, createdAt: Date.now(), definition, capabilities, cursor: position(definition.from, head, floor), outstanding: [], dead: [],
    }
    const created = await this.#d.store.createConsumer(record, this.#d.maxPerUser)
    if (created === 'full') return { retryAfter: FULL_RETRY_S, message: `At most ${this.#d.maxPerUser} consumers per user (MAX_CONSUMERS_PER_USER)` }
    if (created === 'exists') return same((await this.#d.store.consumer(owner, id))!)
    return { created: true, record }
  }

  list(owner: string): Promise<ConsumerRecord[]> {
    return this.#d.store.consumers(owner)
  }

  /** The consumer, or 404. */
  async get(owner: string, id: string): Promise<ConsumerRecord> {
    const record = await this.find(owner, id)
    if (record === undefined) fail('NotFound', 'No such consumer')
    return record
  }

  find(owner: string, id: string): Promise<ConsumerRecord | undefined> {
    return this.#d.store.consumer(owner, id)
  }

  async delete(owner: string, id: string): Promise<void> {
    if (!(await this.#d.store.deleteConsumer(owner, id))) fail('NotFound', 'No such consumer')
    this.#d.hub.deleted(owner, id)
  }

  /**
   * Acks, naks and terms, grouped with the others of the moment into one transaction.
   * `session`, the one asking, must be able to use the consumer (`checkReadable`): checked in
   * the change, where the record is at hand.
   */
  async ack(owner: string, id: string, acks: Acks, session: Viewer): Promise<ConsumerRecord> {
    const done = await this.#change(owner, id, (r) => {
      checkReadable(r, session)
      const a = acknowledge(r, acks)
      return { record: a.record, result: a }
    })
    this.#d.observer.acked(done.result.acked)
    if (done.result.dead.length > 0) this.#d.observer.dead('term', done.result.dead.length)
    return done.record
  }

  /** A new position, and nothing pending. */
  async reset(owner: string, id: string, from: ConsumerDefinition['from']): Promise<ConsumerRecord> {
    const cursor = position(from, this.#d.events.head, this.#d.events.floor)
    return (await this.#change(owner, id, (r) => ({ record: reposition(r, cursor), result: undefined }))).record
  }

  /** The dead letters, oldest first, each with its event as `/subscribe` sends it (its id and seq alone once pruned). */
  async dead(record: ConsumerRecord): Promise<object[]> {
    return Promise.all(record.dead.map(async (d) => {
      const ev = await this.#eventAt(d.seq)
      const base = ev === undefined ? { id: idOf(d.seq), seq: String(d.seq) } : (JSON.parse(dataOf(ev)) as object)
      return { ...base, deliveries: d.deliveries, reason: d.reason }
    }))
  }

  /**
   * Whether the consumer processed event `seq`: at once when it has (or parked it as dead), or
   * when the event is not one it carries; else as soon as it does, or `acked: false` once
   * `timeoutMs` passed (or `gone()` says the asker left). The asker is a session that may use
   * the consumer, or anyone when it shares its progress, and then it carries no private event.
   */
  async acked(record: ConsumerRecord, seq: number, timeoutMs: number, gone: () => boolean): Promise<{ acked: boolean; matched: boolean; ackFloor: string }> {
    const head = this.#d.events.head
    if (seq > head) fail('FutureCursor', 'The event is past the head of the log', { head: String(head) })
    const ev = await this.#eventAt(seq)
    const m = matcherOf(record)
    const matched = ev === undefined || (m.canSee(ev) && m.accepts(ev))
    const answer = (r: ConsumerRecord, acked: boolean) => ({ acked, matched, ackFloor: idOf(ackFloor(r)) })
    if (!matched) return answer(record, seq <= ackFloor(record))
    const deadline = Date.now() + timeoutMs
    for (let r = record; ;) {
      const done = processed(r, seq)
      if (done !== false) return answer(r, done === true)
      const left = deadline - Date.now()
      if (left <= 0 || gone()) return answer(r, false)
      await this.#d.hub.changeOrTimeout(r.owner, r.id, left)
      r = await this.get(r.owner, r.id)
    }
  }

  async #change<T>(owner: string, id: string, change: (r: ConsumerRecord) => { record: ConsumerRecord; result: T }): Promise<{ record: ConsumerRecord; result: T }> {
    const done = await this.#d.hub.updates.apply(owner, id, change)
    if (done === undefined) fail('NotFound', 'No such consumer')
    this.#d.hub.changed(owner, id)
    return done
  }

  /** The event with this seq, if the log still holds it. */
  async #eventAt(seq: number): Promise<HearthEvent | undefined> {
    return (await this.#d.store.readLog(seq - 1, seq, 1)).events[0]
  }
}
