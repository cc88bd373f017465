import { Serial } from '../../serial.js'
import type { ConsumerChange, ConsumerRecord, CreateConsumerResult, Outstanding } from '../consumer-record.js'
import { CACHED_RECORDS, RecordCache, decodeEntry, folds, headOf, journalEntry, replayChanges, snapshotText } from '../consumer-parts.js'
import { asText, type BatchOp, type KV } from './ordered-map.js'

/**
 * Durable consumers on LevelDB: the head (consumer-parts.ts) under `consumers`; under
 * `consumerEvents`, the outstanding events as of some change (the snapshot: one entry) and a
 * journal of the changes since. A change appends one journal entry — its cursor, and the
 * outstanding entries it put, held or took out — so it is one write however many events it
 * touched: a busy consumer's changes touch about three entries per event processed, and a row
 * per entry (a native call each) took a fifth of the server's CPU. Once the journal holds
 * JOURNAL_MOST entries or JOURNAL_BYTES, the next change folds it into a new snapshot instead,
 * with the head, and deletes the journal. A record is read back as its head, its snapshot,
 * then its journal in order. Every change is one synced batch, so kill -9 leaves a record as
 * some change left it. Rows of one entry each, as an earlier version wrote them, are read
 * (in place of a snapshot) and deleted by the next fold.
 *
 * Creations, changes and deletions run one at a time. This process is the only one on the
 * database, so what it read or wrote of a record stays true until it changes it: a change
 * starts from the cached record, and reads answer from it.
 */
export class LevelConsumers {
  readonly #kv: KV
  /** creations, changes and deletions, which read before they write */
  readonly #serial = new Serial()
  readonly #cache = new RecordCache<Stored>(CACHED_RECORDS)

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
    return (this.#cache.get(owner, id, 0) ?? (await this.#serial.run(() => this.#load(owner, id))))?.record
  }

  async #load(owner: string, id: string): Promise<Stored | undefined> {
    const cached = this.#cache.get(owner, id, 0)
    if (cached !== undefined) return cached
    const head = asText(await this.#kv.get('consumers', headKey(owner, id)))
    if (head === undefined) return undefined
    const outstanding: Outstanding[] = []
    const rows: number[] = []
    for await (const [key, v] of this.#kv.entries('consumerEvents', rowsOf(owner, id))) {
      const e = decodeRow(key, asText(v)!)
      outstanding.push(e)
      rows.push(e.seq)
    }
    const texts: string[] = []
    const snapshot = asText(await this.#kv.get('consumerEvents', snapshotKey(owner, id)))
    if (snapshot !== undefined) texts.push(snapshot)
    const journal = { entries: 0, bytes: 0 }
    for await (const [, v] of this.#kv.entries('consumerEvents', journalOf(owner, id))) {
      const text = asText(v)!
      texts.push(text)
      journal.entries++
      journal.bytes += text.length
    }
    const record = replayChanges({ ...(JSON.parse(head) as ConsumerRecord), outstanding }, texts)
    const stored = { record, rows, journal }
    this.#cache.set(owner, id, 0, stored)
    return stored
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
      const stored = await this.#load(owner, id)
      if (stored === undefined) return undefined
      const done = change(stored.record)
      if (done.record !== undefined) await this.#write(done.record, stored)
      return done
    })
  }

  delete(owner: string, id: string): Promise<boolean> {
    return this.#serial.run(async () => {
      if ((await this.#kv.get('consumers', headKey(owner, id))) === undefined) return false
      const ops: BatchOp[] = [{ type: 'del', ns: 'consumers', key: headKey(owner, id) }, { type: 'del', ns: 'consumerEvents', key: snapshotKey(owner, id) }]
      for (const range of [rowsOf(owner, id), journalOf(owner, id)]) {
        for await (const key of this.#kv.keys('consumerEvents', range)) ops.push({ type: 'del', ns: 'consumerEvents', key })
      }
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

  /**
   * Stores `record` over `stored` (what is stored; none: nothing is, or a head of an earlier
   * layout): a journal entry, or a fold (module comment).
   */
  async #write(record: ConsumerRecord, stored: Stored | undefined): Promise<void> {
    const { owner, id } = record
    const ops: BatchOp[] = []
    let next: Stored
    if (stored === undefined || folds(stored.journal.entries, stored.journal.bytes)) {
      ops.push({ type: 'put', ns: 'consumers', key: headKey(owner, id), value: JSON.stringify(headOf(record)) })
      ops.push({ type: 'put', ns: 'consumerEvents', key: snapshotKey(owner, id), value: snapshotText(record) })
      for (const seq of stored?.rows ?? []) ops.push({ type: 'del', ns: 'consumerEvents', key: rowKey(owner, id, seq) })
      for (let n = 0; n < (stored?.journal.entries ?? 0); n++) ops.push({ type: 'del', ns: 'consumerEvents', key: journalKey(owner, id, n) })
      next = { record, rows: [], journal: { entries: 0, bytes: 0 } }
    } else {
      const { head, text } = journalEntry(stored.record, record)
      if (head !== undefined) ops.push({ type: 'put', ns: 'consumers', key: headKey(owner, id), value: head })
      if (text !== undefined) ops.push({ type: 'put', ns: 'consumerEvents', key: journalKey(owner, id, stored.journal.entries), value: text })
      next = { record, rows: stored.rows, journal: text === undefined ? stored.journal : { entries: stored.journal.entries + 1, bytes: stored.journal.bytes + text.length } }
    }
    this.#cache.drop(owner, id)
    if (ops.length > 0) await this.#kv.batch(ops, { sync: true })
    this.#cache.set(owner, id, 0, next)
  }
}

/** What this process knows of a stored consumer: the record, and how it lies in the database. */
interface Stored {
  record: ConsumerRecord
  /** the seqs of the rows an earlier version wrote, deleted by the next fold */
  rows: readonly number[]
  /** the journal written since the snapshot: its entries are numbered from 0 */
  journal: { entries: number; bytes: number }
}


/** A row of an earlier version: its seq in the key, the entry as encodeEntry writes it, or JSON. */
export function decodeRow(key: string, value: string): Outstanding {
  if (value.startsWith('{')) return JSON.parse(value) as Outstanding
  return decodeEntry(parseInt(key.slice(-16), 16), value)
}

const headKey = (owner: string, id: string): string => `${owner}:${id}`
const rowKey = (owner: string, id: string, seq: number): string => `${owner}:${id}:${seq.toString(16).padStart(16, '0')}`
const rowsOf = (owner: string, id: string) => ({ gt: `${owner}:${id}:`, lt: `${owner}:${id};` })
/** the snapshot's key, and a journal entry's: `=` and `!` sort outside the rows' range, and the number keeps the entries in order */
const snapshotKey = (owner: string, id: string): string => `${owner}:${id}=`
const journalKey = (owner: string, id: string, n: number): string => `${owner}:${id}!${n.toString(16).padStart(8, '0')}`
const journalOf = (owner: string, id: string) => ({ gt: `${owner}:${id}!`, lt: `${owner}:${id}"` })
