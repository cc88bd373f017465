import { Serial } from '../../serial.js'
import type { ConsumerChange, ConsumerRecord, CreateConsumerResult, Outstanding } from '../consumer-record.js'
import { CACHED_RECORDS, RecordCache, headChanged, headOf, outstandingChanges } from '../consumer-parts.js'
import { asText, type BatchOp, type KV } from './ordered-map.js'

/**
 * Durable consumers on LevelDB, in parts (consumer-parts.ts): the head under `consumers`, each
 * outstanding event under `consumerEvents`. Creations, changes and deletions run one at a
 * time; a change writes the entries it changed in one synced batch. This process is the only
 * one on the database, so the records it decoded stay true until it changes them: a change
 * starts from the cached record, and reads answer from it.
 */
export class LevelConsumers {
  readonly #kv: KV
  /** creations, changes and deletions, which read before they write */
  readonly #serial = new Serial()
  readonly #cache = new RecordCache(CACHED_RECORDS)

  constructor(kv: KV) {
    this.#kv = kv
  }

  async list(owner: string): Promise<ConsumerRecord[]> {
    const out: ConsumerRecord[] = []
    for await (const key of this.#kv.keys('consumers', { gt: `${owner}:`, lt: `${owner};` })) {
      const record = await this.get(owner, key.slice(owner.length + 1))
      if (record !== undefined) out.push(record)
    }
    return out
  }

  /** From the cache, else read under the lock, so that no change lands between the head and the events. */
  async get(owner: string, id: string): Promise<ConsumerRecord | undefined> {
    return this.#cache.get(owner, id, 0) ?? this.#serial.run(() => this.#load(owner, id))
  }

  async #load(owner: string, id: string): Promise<ConsumerRecord | undefined> {
    const cached = this.#cache.get(owner, id, 0)
    if (cached !== undefined) return cached
    const head = asText(await this.#kv.get('consumers', headKey(owner, id)))
    if (head === undefined) return undefined
    const outstanding: Outstanding[] = []
    for await (const [key, v] of this.#kv.entries('consumerEvents', rowsOf(owner, id))) outstanding.push(decodeRow(key, asText(v)!))
    const record = { ...(JSON.parse(head) as ConsumerRecord), outstanding }
    this.#cache.set(owner, id, 0, record)
    return record
  }

  create(record: ConsumerRecord, maxPerOwner: number): Promise<CreateConsumerResult> {
    return this.#serial.run(async () => {
      if ((await this.#kv.get('consumers', headKey(record.owner, record.id))) !== undefined) return 'exists'
      let n = 0
      for await (const _ of this.#kv.keys('consumers', { gt: `${record.owner}:`, lt: `${record.owner};`, limit: maxPerOwner })) n++
      if (n >= maxPerOwner) return 'full'
      await this.#write(record, undefined)
      return 'created'
    })
  }

  update<T>(owner: string, id: string, change: (record: ConsumerRecord) => ConsumerChange<T>): Promise<ConsumerChange<T> | undefined> {
    return this.#serial.run(async () => {
      const record = await this.#load(owner, id)
      if (record === undefined) return undefined
      const done = change(record)
      if (done.record !== undefined) await this.#write(done.record, record)
      return done
    })
  }

  delete(owner: string, id: string): Promise<boolean> {
    return this.#serial.run(async () => {
      if ((await this.#kv.get('consumers', headKey(owner, id))) === undefined) return false
      const ops: BatchOp[] = [{ type: 'del', ns: 'consumers', key: headKey(owner, id) }]
      for await (const key of this.#kv.keys('consumerEvents', rowsOf(owner, id))) ops.push({ type: 'del', ns: 'consumerEvents', key })
      this.#cache.drop(owner, id)
      await this.#kv.batch(ops, { sync: true })
      return true
    })
  }

  /**
   * Records of an earlier layout, whose outstanding events lay inside the head, are split at
   * open; each consumer lands in one batch, so a pass cut short goes on at the next open.
   */
  async split(): Promise<void> {
    for await (const [, value] of this.#kv.entries('consumers', {})) {
      const record = JSON.parse(asText(value)!) as Partial<ConsumerRecord>
      if (record.outstanding !== undefined) await this.#write(record as ConsumerRecord, undefined)
    }
  }

  /** Stores `record` over `before` (what is stored; none: nothing is), writing only what differs. */
  async #write(record: ConsumerRecord, before: ConsumerRecord | undefined): Promise<void> {
    const { owner, id } = record
    const ops: BatchOp[] = []
    if (before === undefined || headChanged(before, record)) {
      ops.push({ type: 'put', ns: 'consumers', key: headKey(owner, id), value: JSON.stringify(headOf(record)) })
    }
    const { put, del } = outstandingChanges(before?.outstanding ?? [], record.outstanding)
    for (const e of put) ops.push({ type: 'put', ns: 'consumerEvents', key: rowKey(owner, id, e.seq), value: encodeRow(e) })
    for (const seq of del) ops.push({ type: 'del', ns: 'consumerEvents', key: rowKey(owner, id, seq) })
    this.#cache.drop(owner, id)
    if (ops.length > 0) await this.#kv.batch(ops, { sync: true })
    this.#cache.set(owner, id, 0, record)
  }
}

/**
 * An outstanding event's entry, its seq in the key: `<deliveries> <deadline> <holder> <user>`,
 * the deadline and holder empty while it is not out. A commit writes one per event it reads,
 * leases or hands back, so it is kept short: as JSON a lease took 167 bytes, not 84, and a
 * batch of 360 took half again as long to build. Entries an earlier version wrote as JSON are
 * read as they are.
 */
export function encodeRow(e: Outstanding): string {
  return `${e.deliveries} ${e.deadline ?? ''} ${e.holder ?? ''} ${e.user}`
}

export function decodeRow(key: string, value: string): Outstanding {
  if (value.startsWith('{')) return JSON.parse(value) as Outstanding
  const [deliveries, deadline, holder] = value.split(' ', 3) as [string, string, string]
  const user = value.slice(deliveries.length + deadline.length + holder.length + 3)
  const seq = parseInt(key.slice(-16), 16)
  return holder === '' ? { seq, user, deliveries: Number(deliveries) } : { seq, user, deliveries: Number(deliveries), holder, deadline: Number(deadline) }
}

const headKey = (owner: string, id: string): string => `${owner}:${id}`
const rowKey = (owner: string, id: string, seq: number): string => `${owner}:${id}:${seq.toString(16).padStart(16, '0')}`
const rowsOf = (owner: string, id: string) => ({ gt: `${owner}:${id}:`, lt: `${owner}:${id};` })
