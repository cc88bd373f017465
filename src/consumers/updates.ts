import type { ConsumerRecord, Store } from '../kv/store.js'

/** A change of a consumer's record: the record to store (the same object: unchanged) and a result. */
export type Change<T> = (record: ConsumerRecord) => { record: ConsumerRecord; result: T }

interface Job {
  change: Change<unknown>
  resolve: (done: { record: ConsumerRecord; result: unknown } | undefined) => void
  reject: (err: unknown) => void
}

/**
 * Changes of consumers' records, grouped per consumer: the changes asked for while a
 * transaction of that consumer runs (acks from many requests, claims and releases of its
 * streams) are applied one after another, in order, in the next transaction, which stores
 * the record once. So N acks that arrive together cost one write and one fsync or COMMIT,
 * not N. A change that throws fails alone; the others of its group still land.
 */
export class ConsumerUpdates {
  readonly #store: Store
  readonly #queues = new Map<string, Job[]>()
  /** called with each record stored, after its transaction */
  readonly #stored: (record: ConsumerRecord) => void

  constructor(store: Store, stored: (record: ConsumerRecord) => void) {
    this.#store = store
    this.#stored = stored
  }

  /** Applies `change` in the next transaction of the consumer; undefined when it does not exist. */
  apply<T>(owner: string, id: string, change: Change<T>): Promise<{ record: ConsumerRecord; result: T } | undefined> {
    const key = `${owner}/${id}`
    return new Promise((resolve, reject) => {
      const job = { change, resolve, reject } as Job
      const queue = this.#queues.get(key)
      if (queue !== undefined) return void queue.push(job)
      this.#queues.set(key, [job])
      void this.#drain(key, owner, id)
    })
  }

  async #drain(key: string, owner: string, id: string): Promise<void> {
    // jobs asked for during this tick join the first group
    await Promise.resolve()
    for (;;) {
      const jobs = this.#queues.get(key)!
      if (jobs.length === 0) return void this.#queues.delete(key)
      this.#queues.set(key, [])
      const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = []
      try {
        const done = await this.#store.updateConsumer(owner, id, (stored) => {
          outcomes.length = 0
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
          return { record: record === stored ? undefined : record, result: record }
        })
        if (done !== undefined && done.record !== undefined) this.#stored(done.result)
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
