import type { ConsumerRecord, Store } from '../kv/store.js'
import type { ConsumerObserver } from './observer.js'

/** A change of a consumer's record: the record to store (the same object: unchanged) and a result. */
export type Change<T> = (record: ConsumerRecord) => { record: ConsumerRecord; result: T }

interface Job {
  change: Change<unknown>
  /** a run's step, which leases events itself */
  leases: boolean
  resolve: (done: { record: ConsumerRecord; result: unknown } | undefined) => void
  reject: (err: unknown) => void
}

/**
 * A change that rides along at the end of a group, and what to do once it is stored: a run's
 * leases, so that an ack (which lets the user's next event go) and the lease of that next
 * event are one commit, not two.
 */
export interface Rider<T> {
  change: Change<T>
  stored(record: ConsumerRecord, result: T): void
}

/**
 * Changes of consumers' records, grouped per consumer: the changes asked for while a
 * transaction of that consumer runs (acks from many requests, claims and releases of its
 * streams) are applied one after another, in order, in the next transaction, which stores
 * the record once. So N acks that arrive together cost one write and one fsync or COMMIT,
 * not N. A change that throws fails alone; the others of its group still land. A group with
 * no step of a run ends with the rider of the consumer's run here, if any (its leases).
 */
export class ConsumerUpdates {
  readonly #store: Store
  readonly #queues = new Map<string, Job[]>()
  /** what waits for a consumer's queue to empty (`whenIdle`) */
  readonly #idle = new Map<string, (() => void)[]>()
  /** called with each record stored, after its transaction */
  readonly #stored: (record: ConsumerRecord) => void
  readonly #observer: ConsumerObserver
  readonly #rider: (owner: string, id: string) => Rider<unknown> | undefined

  constructor(store: Store, observer: ConsumerObserver, stored: (record: ConsumerRecord) => void, rider: (owner: string, id: string) => Rider<unknown> | undefined) {
    this.#store = store
    this.#observer = observer
    this.#stored = stored
    this.#rider = rider
  }

  /** Applies `change` in the next transaction of the consumer; undefined when it does not exist. `leases`: a run's step. */
  apply<T>(owner: string, id: string, change: Change<T>, leases = false): Promise<{ record: ConsumerRecord; result: T } | undefined> {
    const key = `${owner}/${id}`
    return new Promise((resolve, reject) => {
      const job = { change, leases, resolve, reject } as Job
      const queue = this.#queues.get(key)
      if (queue !== undefined) return void queue.push(job)
      this.#queues.set(key, [job])
      void this.#drain(key, owner, id)
    })
  }

  /** Whether changes of the consumer are being stored, or wait for their turn. */
  busy(owner: string, id: string): boolean {
    return this.#queues.has(`${owner}/${id}`)
  }

  /** Calls `fn` once no change of the consumer is being stored or waits (at once, in a microtask, when none is). */
  whenIdle(owner: string, id: string, fn: () => void): void {
    const key = `${owner}/${id}`
    if (!this.#queues.has(key)) return queueMicrotask(fn)
    const waiting = this.#idle.get(key)
    if (waiting === undefined) this.#idle.set(key, [fn])
    else waiting.push(fn)
  }

  async #drain(key: string, owner: string, id: string): Promise<void> {
    // jobs asked for during this tick join the first group
    await Promise.resolve()
    for (;;) {
      const jobs = this.#queues.get(key)!
      if (jobs.length === 0) {
        this.#queues.delete(key)
        const waiting = this.#idle.get(key)
        this.#idle.delete(key)
        for (const fn of waiting ?? []) fn()
        return
      }
      this.#queues.set(key, [])
      const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = []
      const rider = jobs.some((job) => job.leases) ? undefined : this.#rider(owner, id)
      let ridden: { value: unknown } | undefined
      try {
        const done = await this.#store.updateConsumer(owner, id, (stored) => {
          outcomes.length = 0
          ridden = undefined
          let record = stored
          for (const job of jobs) {
            try {
              const out = job.change(record)
              record = out.record
              outcomes.push({ ok: true, value: out.result })
            } catch (err) {
              outcomes.push({ ok: false, err })
            }
          }
          if (rider !== undefined) {
            try {
              const out = rider.change(record)
              record = out.record
              ridden = { value: out.result }
            } catch {
              // the group lands without it; the run's next step leases
            }
          }
          return { record: record === stored ? undefined : record, result: record }
        })
        if (done !== undefined && done.record !== undefined) {
          this.#observer.committed(jobs.length + (ridden === undefined ? 0 : 1))
          this.#stored(done.result)
        }
        if (done !== undefined && ridden !== undefined) rider!.stored(done.result, ridden.value)
        jobs.forEach((job, i) => {
          const o = outcomes[i]!
          if (done === undefined) job.resolve(undefined)
          else if (o.ok) job.resolve({ record: done.result, result: o.value })
          else job.reject(o.err)
        })
      } catch (err) {
        for (const job of jobs) job.reject(err)
      }
    }
  }
}
