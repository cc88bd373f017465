import { Serial } from '../../serial.js'
import type { ConsumerChange, ConsumerRecord, CreateConsumerResult, Outstanding } from '../consumer-record.js'
import { CACHED_RECORDS, RecordCache, headChangedBesidesCursor, headOf, outstandingChanges } from '../consumer-parts.js'
import { asText, type BatchOp, type KV } from './ordered-map.js'

/**
 * Durable consumers on LevelDB, in parts (consumer-parts.ts): the head under `consumers`; under
 * `consumerEvents`, a row per outstanding event and a journal of what changed since the rows
 * were written. A change appends one journal entry — its cursor, and the entries it put or
 * took out — rather than a row for each event it touched: a busy consumer's changes touch
 * about three entries per event processed, and writing each as a row of its own (a native
 * call each) took a fifth of the server's CPU. Once the journal holds JOURNAL_MOST entries or
 * JOURNAL_BYTES, the next change folds it into the rows instead: the rows that differ, the
 * head, and the journal's entries deleted. A record is read back as its head, its rows, then
 * its journal in order. Every change is one synced batch, so kill -9 leaves a record as some
 * change left it.
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
    const rows: Outstanding[] = []
    for await (const [key, v] of this.#kv.entries('consumerEvents', rowsOf(owner, id))) rows.push(decodeRow(key, asText(v)!))
    let record: ConsumerRecord = { ...(JSON.parse(head) as ConsumerRecord), outstanding: rows }
    const journal = { entries: 0, bytes: 0 }
    const entries = new Map(rows.map((e) => [e.seq, e]))
    for await (const [, v] of this.#kv.entries('consumerEvents', journalOf(owner, id))) {
      const text = asText(v)!
      record = { ...record, cursor: replay(text, entries) ?? record.cursor }
      journal.entries++
      journal.bytes += text.length
    }
    if (journal.entries > 0) record = { ...record, outstanding: [...entries.values()].sort((a, b) => a.seq - b.seq) }
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
      const ops: BatchOp[] = [{ type: 'del', ns: 'consumers', key: headKey(owner, id) }]
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
   * layout): a journal entry, or the journal folded into the rows (module comment).
   */
  async #write(record: ConsumerRecord, stored: Stored | undefined): Promise<void> {
    const { owner, id } = record
    const ops: BatchOp[] = []
    let next: Stored
    if (stored === undefined || stored.journal.entries >= JOURNAL_MOST || stored.journal.bytes >= JOURNAL_BYTES) {
      ops.push({ type: 'put', ns: 'consumers', key: headKey(owner, id), value: JSON.stringify(headOf(record)) })
      const { put, del } = outstandingChanges(stored?.rows ?? [], record.outstanding)
      for (const e of put) ops.push({ type: 'put', ns: 'consumerEvents', key: rowKey(owner, id, e.seq), value: encodeRow(e) })
      for (const seq of del) ops.push({ type: 'del', ns: 'consumerEvents', key: rowKey(owner, id, seq) })
      for (let n = 0; n < (stored?.journal.entries ?? 0); n++) ops.push({ type: 'del', ns: 'consumerEvents', key: journalKey(owner, id, n) })
      next = { record, rows: record.outstanding, journal: { entries: 0, bytes: 0 } }
    } else {
      const before = stored.record
      if (headChangedBesidesCursor(before, record)) ops.push({ type: 'put', ns: 'consumers', key: headKey(owner, id), value: JSON.stringify(headOf(record)) })
      const { put, del } = outstandingChanges(before.outstanding, record.outstanding)
      let text = ''
      if (put.length > 0 || del.length > 0 || record.cursor !== before.cursor) {
        text = `c${record.cursor}\n`
        for (const e of put) text += `+${e.seq.toString(16)} ${encodeRow(e)}\n`
        for (const seq of del) text += `-${seq.toString(16)}\n`
        ops.push({ type: 'put', ns: 'consumerEvents', key: journalKey(owner, id, stored.journal.entries), value: text })
      }
      next = { record, rows: stored.rows, journal: text === '' ? stored.journal : { entries: stored.journal.entries + 1, bytes: stored.journal.bytes + text.length } }
    }
    this.#cache.drop(owner, id)
    if (ops.length > 0) await this.#kv.batch(ops, { sync: true })
    this.#cache.set(owner, id, 0, next)
  }
}

/** What this process knows of a stored consumer: the record, and how it lies in the database. */
interface Stored {
  record: ConsumerRecord
  /** the outstanding entries as the rows hold them, the journal aside */
  rows: readonly Outstanding[]
  /** the journal written since the rows: its entries are numbered from 0 */
  journal: { entries: number; bytes: number }
}

/** A journal this long is folded into the rows by the next change: a record is read back from its rows and at most this many entries. */
export const JOURNAL_MOST = 64
/** Or this large (a change of many entries at once writes a long one). */
export const JOURNAL_BYTES = 2 * 1024 * 1024

/**
 * Applies one journal entry to `entries` (outstanding entries by seq): lines of `c<cursor>`,
 * `+<seq in hex> <entry as its row holds it>` and `-<seq in hex>`. Returns the entry's cursor.
 */
function replay(text: string, entries: Map<number, Outstanding>): number | undefined {
  let cursor: number | undefined
  for (const line of text.split('\n')) {
    if (line.startsWith('c')) {
      cursor = Number(line.slice(1))
    } else if (line.startsWith('+')) {
      const space = line.indexOf(' ')
      const seq = parseInt(line.slice(1, space), 16)
      entries.set(seq, decodeEntry(seq, line.slice(space + 1)))
    } else if (line.startsWith('-')) {
      entries.delete(parseInt(line.slice(1), 16))
    }
  }
  return cursor
}

/**
 * An outstanding event's entry as a row holds it (its seq in the key) and a journal line
 * carries it (its seq before it): `<deliveries> <deadline> <holder> <user>`, the deadline and
 * holder empty while it is not out. A change writes one per event it reads, leases or hands
 * back, so it is kept short: as JSON a lease took 167 bytes, not 84, and a batch of 360 took
 * half again as long to build. Rows an earlier version wrote as JSON are read as they are.
 */
export function encodeRow(e: Outstanding): string {
  return `${e.deliveries} ${e.deadline ?? ''} ${e.holder ?? ''} ${e.user}`
}

export function decodeRow(key: string, value: string): Outstanding {
  if (value.startsWith('{')) return JSON.parse(value) as Outstanding
  return decodeEntry(parseInt(key.slice(-16), 16), value)
}

function decodeEntry(seq: number, value: string): Outstanding {
  const [deliveries, deadline, holder] = value.split(' ', 3) as [string, string, string]
  const user = value.slice(deliveries.length + deadline.length + holder.length + 3)
  return holder === '' ? { seq, user, deliveries: Number(deliveries) } : { seq, user, deliveries: Number(deliveries), holder, deadline: Number(deadline) }
}

const headKey = (owner: string, id: string): string => `${owner}:${id}`
const rowKey = (owner: string, id: string, seq: number): string => `${owner}:${id}:${seq.toString(16).padStart(16, '0')}`
const rowsOf = (owner: string, id: string) => ({ gt: `${owner}:${id}:`, lt: `${owner}:${id};` })
/** a journal entry's key: `!` sorts before the rows' `:`, and the number keeps the entries in order */
const journalKey = (owner: string, id: string, n: number): string => `${owner}:${id}!${n.toString(16).padStart(8, '0')}`
const journalOf = (owner: string, id: string) => ({ gt: `${owner}:${id}!`, lt: `${owner}:${id}"` })
