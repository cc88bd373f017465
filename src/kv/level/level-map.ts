import { Level } from 'level'
import { Serial } from '../../serial.js'
import { keyOrder } from '../store.js'
import { NAMESPACES, checkBatch, type BatchOp, type KV, type Namespace, type Range, type ReadOptions, type Snapshot, type Value } from './ordered-map.js'

/** The most bytes one native step of a paged read brings over (LevelDB's default is 16 KiB). */
export const PAGE_READ_BYTES = 256 * 1024
const VIEW_READ_BYTES = 16 * 1024

/** The most entries one `nextv` asks for: the native side reserves room for all of them up front. */
const NEXTV_MOST = 1024

type Sub = ReturnType<Level<string, string>['sublevel']>

/** The LevelDB backend: one database, one sublevel per namespace. */
export class LevelKV implements KV {
  readonly #db: Level<string, string>
  readonly #subs = new Map<Namespace, Sub>()
  /** each namespace's key prefix in the root database, as its sublevel writes it */
  readonly #prefixes = new Map<Namespace, string>()

  constructor(location: string) {
    this.#db = new Level<string, string>(location, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    for (const [ns, enc] of Object.entries(NAMESPACES) as [Namespace, string][]) {
      const valueEncoding = enc === 'bytes' ? 'view' : 'utf8'
      const sub = this.#db.sublevel<string, any>(ns, { keyEncoding: 'utf8', valueEncoding }) as Sub
      this.#subs.set(ns, sub)
      this.#prefixes.set(ns, sub.prefix)
    }
  }

  async open(): Promise<void> {
    await this.#db.open()
  }

  async close(): Promise<void> {
    await this.#db.close()
  }

  #sub(ns: Namespace): Sub {
    return this.#subs.get(ns)!
  }

  async get(ns: Namespace, key: string, options: ReadOptions = {}): Promise<Value | undefined> {
    return (await this.#sub(ns).get(key, snapshotOption(options))) as Value | undefined
  }

  snapshot(): Snapshot {
    return this.#db.snapshot()
  }

  async getMany(ns: Namespace, keys: string[]): Promise<(Value | undefined)[]> {
    return (await this.#sub(ns).getMany(keys)) as (Value | undefined)[]
  }

  async batch(ops: BatchOp[], options: { sync?: boolean } = {}): Promise<void> {
    checkBatch(ops)
    if (ops.length === 0) return
    // One chained batch on the root database, each key already given its namespace's prefix
    // as the sublevel would: an array batch copies and re-encodes every op inside
    // abstract-level, which profiled at twice the CPU of the chained form for a commit group of
    // thousands of ops. LevelDB applies it all or nothing alike.
    const batch = this.#db.batch()
    for (const op of ops) {
      const key = this.#prefixes.get(op.ns)! + op.key
      if (op.type === 'del') batch.del(key)
      else if (typeof op.value === 'string') batch.put(key, op.value)
      else batch.put<string, Uint8Array>(key, op.value, { valueEncoding: 'view' })
    }
    await batch.write({ sync: options.sync === true })
  }

  async *entries(ns: Namespace, range: Range): AsyncIterable<[string, Value]> {
    for await (const entry of this.#sub(ns).iterator(levelRange(range))) yield entry as [string, Value]
  }

  /**
   * For each prefix, the entries whose keys begin with it, through one iterator moved to each
   * (opening an iterator a prefix cost 20 times as much for a commit group of 2,000 users).
   */
  async entriesUnder(ns: Namespace, prefixes: readonly string[]): Promise<[string, Value][][]> {
    if (prefixes.length === 0) return []
    const it = this.#sub(ns).iterator()
    try {
      const out: [string, Value][][] = []
      for (const prefix of prefixes) {
        const found: [string, Value][] = []
        it.seek(prefix)
        for (;;) {
          const page = (await it.nextv(16)) as [string, Value][]
          // by prefix, not by comparing strings: JavaScript orders them by UTF-16 units, LevelDB by UTF-8 bytes
          const mine = page.filter(([key]) => key.startsWith(prefix))
          found.push(...mine)
          if (mine.length < page.length || page.length === 0) break
        }
        out.push(found)
      }
      return out
    } finally {
      await it.close()
    }
  }

  async *keys(ns: Namespace, range: Range): AsyncIterable<string> {
    for await (const key of this.#sub(ns).keys(levelRange(range))) yield key as string
  }

  /**
   * One page of values through `nextv`: LevelDB hands them over in a few native calls of up to
   * PAGE_READ_BYTES each, where an async iteration takes a promise and a call per entry (a
   * replay spent more time there than in reading).
   */
  async values(ns: Namespace, range: Range, limit: number, read: ReadOptions = {}): Promise<Value[]> {
    // highWaterMarkBytes is classic-level's own option, which abstract-level's types do not name;
    // with `keep`, entries it drops are read too, so the iterator is not bounded by `limit`
    const bound = read.keep === undefined ? limit : -1
    const options = { ...levelRange(range), limit: bound, highWaterMarkBytes: PAGE_READ_BYTES, ...snapshotOption(read) }
    const it = this.#sub(ns).values(options)
    try {
      let out: Value[] = []
      while (out.length < limit) {
        // classic-level reserves room for as many entries as asked, so ask a bounded number
        let more = (await it.nextv(Math.min(limit - out.length, NEXTV_MOST))) as Value[]
        if (more.length === 0) break
        if (read.keep !== undefined) more = more.filter(read.keep)
        out = out.length === 0 ? more : out.concat(more)
      }
      return out
    } finally {
      await it.close()
    }
  }

  /**
   * One iterator over a namespace's entries at `snapshot`, moved to each page asked: a read
   * view's pages (a snapshot's files) through it, in steps of `readBytes`. `close` it before the
   * snapshot.
   */
  viewPages(ns: Namespace, snapshot: Snapshot, readBytes = VIEW_READ_BYTES): ViewPages {
    return new ViewPages(() => this.#sub(ns).iterator({ highWaterMarkBytes: readBytes, snapshot } as object) as EntryIterator)
  }

  /** Counts keys in many short ranges through one iterator; `close` it when done. */
  rangeCounter(ns: Namespace): RangeCounter {
    return new RangeCounter(this.#sub(ns))
  }
}

/**
 * One iterator over a namespace's keys, moved to each range asked: a seek costs a fraction of
 * opening an iterator. It reads the database as it stood when the first count began. Counts
 * run one at a time, as an iterator allows. Once closed it counts no more: an iterator opened
 * after `close` would hold its snapshot, and with it LevelDB's compactions, until the
 * database closes.
 */
export class RangeCounter {
  readonly #sub: Sub
  #keys: ReturnType<Sub['keys']> | undefined
  #closed = false
  readonly #serial = new Serial()

  constructor(sub: Sub) {
    this.#sub = sub
  }

  /** How many keys start with `prefix`, or `cap` if at least that many. */
  count(prefix: string, cap: number): Promise<number> {
    return this.#serial.run(async () => {
      if (this.#closed) throw new Error('range counter used after close')
      const keys = (this.#keys ??= this.#sub.keys())
      keys.seek(prefix)
      let n = 0
      while (n < cap) {
        const page = (await keys.nextv(Math.min(cap - n, 64))) as string[]
        for (const key of page) {
          // the first key past the prefix ends the range (by prefix, not by comparing strings:
          // JavaScript orders them by UTF-16 units, LevelDB by UTF-8 bytes)
          if (!key.startsWith(prefix)) return n
          n++
        }
        if (page.length === 0) break
      }
      return n
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#serial.run(async () => this.#keys?.close())
  }
}

type EntryIterator = ReturnType<Sub['iterator']>

/**
 * The pages of one read view, each a range read from one iterator that the view keeps: each
 * page is sought to (or, when it starts right after the last entry read, read on), never an
 * iterator of its own. An iterator keeps the entries of its last native step until V8
 * collects it, after `close()` too; a view that opened one per page left as many such steps
 * waiting for a major collection, and a snapshot of a million files grew the process by as
 * many megabytes. Pages run one at a time, as an iterator allows.
 */
export class ViewPages {
  readonly #open: () => EntryIterator
  #it: EntryIterator | undefined
  /** the last key the iterator handed over (to this page or past its end): a page after it needs no seek */
  #last: string | undefined
  #closed = false
  readonly #serial = new Serial()

  constructor(open: () => EntryIterator) {
    this.#open = open
  }

  /** The entries in `range` (its bounds; neither `reverse` nor `limit`), at most `limit`, in key order. */
  page(range: Range, limit: number): Promise<[string, Value][]> {
    return this.#serial.run(async () => {
      if (this.#closed) throw new Error('read view used after close')
      const it = (this.#it ??= this.#open())
      const from = range.gt ?? range.gte
      // a page right after the last entry read goes on from there; any other is sought to
      const seek = range.gt === undefined || range.gt !== this.#last
      if (seek) {
        it.seek(from ?? '')
        this.#last = undefined
      }
      const out: [string, Value][] = []
      let skip = seek ? range.gt : undefined
      while (out.length < limit) {
        // one more when the seek lands on `gt` itself, which the page leaves out
        const want = limit - out.length + (skip === undefined ? 0 : 1)
        const more = (await it.nextv(Math.min(want, NEXTV_MOST))) as [string, Value][]
        if (more.length === 0) return out
        this.#last = more[more.length - 1]![0]
        for (const entry of more) {
          const key = entry[0]
          if (skip !== undefined) {
            const first = skip
            skip = undefined
            if (key === first) continue
          }
          if (pastEnd(key, range)) return out
          out.push(entry)
          if (out.length === limit) break
        }
      }
      return out
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#serial.run(async () => this.#it?.close())
  }
}

/** Whether `key` lies after the range's upper bound. */
function pastEnd(key: string, range: Range): boolean {
  if (range.lt !== undefined) return keyOrder(key, range.lt) >= 0
  return range.lte !== undefined && keyOrder(key, range.lte) > 0
}

function snapshotOption(options: ReadOptions): { snapshot?: any } {
  return options.snapshot === undefined ? {} : { snapshot: options.snapshot }
}

function levelRange(range: Range): Record<string, unknown> {
  const out: Record<string, unknown> = { limit: range.limit ?? -1, reverse: range.reverse === true }
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) if (range[k] !== undefined) out[k] = range[k]
  return out
}
