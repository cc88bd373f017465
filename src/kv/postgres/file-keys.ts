import type pg from 'pg'
import type { KeyRange } from '../store.js'
import { selectRows, type Param, type RowShape } from './field-rows.js'
import { FULL_START, START_BYTES, isFull, keyParts } from './key-parts.js'

/** Keys fetched per query: a long listing is read in pages, never held whole. */
const PAGE = 500

/**
 * File keys in byte order, paged: each page resumes after the last key of the one before, so
 * memory stays bounded however many keys the range holds. Each page is its own statement: a
 * listing that spans pages may see a commit between them, as a LevelDB iterator without a
 * snapshot would not; listings are paged by the client with cursors anyway, which have the
 * same property.
 */
export async function* fileKeys(pool: pg.Pool, range: KeyRange): AsyncGenerator<string> {
  const scan = new KeyScan(range)
  let left = range.limit === undefined || range.limit < 0 ? Infinity : range.limit
  while (left > 0 && !scan.done) {
    const rows = await scan.page(pool, Math.min(PAGE, left))
    for (const row of rows) yield row.key
    left -= rows.length
  }
}

/** What a scan queries: the pool, or one connection (a read view's transaction). */
export type Db = pg.Pool | pg.PoolClient

/** A row of a scan: the key, and the other columns asked for. */
export type KeyRow = { key: string }

/** A scan of keys alone. */
const KEYS: RowShape<KeyRow> = { columns: 'key', row: (f) => ({ key: f[0]! }) }

/** One end of a range: the key, its parts, and whether the key is in the range. */
interface Bound {
  key: string
  bytes: Buffer
  start: Buffer
  rest: Buffer
  inclusive: boolean
}

/**
 * Where a scan stands: among the keys of one full `start`, past the rest `from`; or between
 * starts, past the start `from`. Nothing before it is left to read.
 */
type Position = { start: Buffer; from?: Edge } | { start?: undefined; from?: Edge }

/** A point of the scan's order, and whether it is still to be read. */
interface Edge {
  bytes: Buffer
  inclusive: boolean
}

/**
 * A range read in key order over the two indexes of migration 3. Between starts it reads
 * files_pkey in key_start order: a start shorter than 2,048 bytes is one key; the keys of a
 * full start arrive together but in no order, so they are put in order here when the page
 * holds them all, and otherwise read from files_rest, in order and in pages, before the scan
 * goes on past their start. A listing of keys that fit in 2,048 bytes reads as it always did:
 * one indexed query per page.
 */
export class KeyScan {
  done: boolean
  readonly #reverse: boolean
  /** where the scan stops: the upper end, or the lower one when reverse */
  readonly #end: Bound | undefined
  #at: Position

  constructor(range: KeyRange) {
    this.#reverse = range.reverse === true
    const lo = narrower(range.gt, range.gte, 1)
    const hi = narrower(range.lt, range.lte, -1)
    const from = this.#reverse ? hi : lo
    this.#end = this.#reverse ? lo : hi
    this.done = lo !== undefined && hi !== undefined && empty(lo, hi)
    this.#at =
      from !== undefined && isFull(from.start)
        ? { start: from.start, from: { bytes: from.rest, inclusive: from.inclusive } }
        : { from: from && { bytes: from.start, inclusive: from.inclusive } }
  }

  /** The rows of the next keys, at most `take` (perhaps none while `done` is still false), in the shape asked for (the key alone by default). */
  page(db: Db, take: number): Promise<KeyRow[]>
  page<R extends KeyRow>(db: Db, take: number, shape: RowShape<R>): Promise<R[]>
  page(db: Db, take: number, shape: RowShape<KeyRow> = KEYS): Promise<KeyRow[]> {
    const { start, from } = this.#at
    return start === undefined ? this.#between(db, from, take, shape) : this.#within(db, start, from, take, shape)
  }

  async #between(db: Db, from: Edge | undefined, take: number, shape: RowShape<KeyRow>): Promise<KeyRow[]> {
    const where = new Conditions()
    if (from !== undefined) where.add(`key_start ${this.#past(from.inclusive)} ?`, from.bytes)
    const end = this.#end
    // the end's own start may be shared: the keys past the end within it are filtered out
    if (end !== undefined) where.add(`key_start ${this.#before(true)} ? AND key ${this.#before(end.inclusive)} ?`, end.start, end.key)
    // the key parts are derived from each key here, not selected: a bytea column comes back as
    // hex text that pg turns into a Buffer per row, which was most of what a page allocated
    const rows = await where.select(db, shape, `key_start ${this.#order}`, take)
    const keys: KeyRow[] = []
    for (let i = 0; i < rows.length; ) {
      if (!mayShareStart(rows[i]!.key)) {
        keys.push(rows[i++]!) // its start is the whole key: no other row has it
        continue
      }
      const start = keyParts(rows[i]!.key).start
      let j = i + 1
      while (j < rows.length && mayShareStart(rows[j]!.key) && keyParts(rows[j]!.key).start.equals(start)) j++
      if (j === rows.length && rows.length === take) {
        // the page may have stopped within this start's keys: read them all, in order
        this.#at = { start }
        return keys
      }
      const run = rows.slice(i, j).sort((a, b) => this.#sign * Buffer.compare(keyParts(a.key).rest, keyParts(b.key).rest))
      for (const row of run) keys.push(row)
      i = j
    }
    if (rows.length < take) this.done = true
    else this.#at = { from: { bytes: keyParts(rows[rows.length - 1]!.key).start, inclusive: false } }
    return keys
  }

  async #within(db: Db, start: Buffer, from: Edge | undefined, take: number, shape: RowShape<KeyRow>): Promise<KeyRow[]> {
    // the predicate of files_rest, then its columns
    const where = new Conditions(FULL_START)
    where.add('sha256(key_start) = sha256(?) AND key_start = ?', start, start)
    if (from !== undefined) where.add(`key_rest ${this.#past(from.inclusive)} ?`, from.bytes)
    const end = this.#end
    const endsHere = end !== undefined && end.start.equals(start)
    if (endsHere) where.add(`key_rest ${this.#before(end.inclusive)} ?`, end.rest)
    const rows = await where.select(db, shape, `key_rest ${this.#order}`, take)
    if (rows.length === take) this.#at = { start, from: { bytes: keyParts(rows[rows.length - 1]!.key).rest, inclusive: false } }
    else if (endsHere) this.done = true
    else this.#at = { from: { bytes: start, inclusive: false } }
    return rows
  }

  get #order(): string {
    return this.#reverse ? 'DESC' : 'ASC'
  }

  get #sign(): number {
    return this.#reverse ? -1 : 1
  }

  /** The comparison that keeps what lies beyond a point, in the scan's direction. */
  #past(inclusive: boolean): string {
    return (this.#reverse ? '<' : '>') + (inclusive ? '=' : '')
  }

  /** The comparison that keeps what lies before the end. */
  #before(inclusive: boolean): string {
    return (this.#reverse ? '>' : '<') + (inclusive ? '=' : '')
  }
}

/** A WHERE clause built from parts, `?` standing for each next parameter. */
class Conditions {
  readonly #parts: string[]
  readonly #params: Param[] = []

  constructor(...parts: string[]) {
    this.#parts = parts
  }

  add(sql: string, ...values: Param[]): void {
    let n = 0
    this.#parts.push(sql.replace(/\?/g, () => `$${this.#params.push(values[n++]!)}`))
  }

  select<R>(db: Db, shape: RowShape<R>, order: string, limit: number): Promise<R[]> {
    const where = this.#parts.length === 0 ? '' : `WHERE ${this.#parts.join(' AND ')}`
    return selectRows(db, `SELECT ${shape.columns} FROM files ${where} ORDER BY ${order} LIMIT ${limit}`, this.#params, shape.row)
  }
}

/** Whether a key's start may be shared: only a key of START_BYTES bytes or more has a full one. */
function mayShareStart(key: string): boolean {
  // a character takes at most 3 UTF-8 bytes for each of its UTF-16 units
  return key.length * 3 >= START_BYTES && Buffer.byteLength(key) >= START_BYTES
}

function bound(key: string, inclusive: boolean): Bound {
  return { key, bytes: Buffer.from(key), ...keyParts(key), inclusive }
}

/** The range's lower (`side` 1) or upper (-1) end: of an exclusive and an inclusive one, the narrower. */
function narrower(exclusive: string | undefined, inclusive: string | undefined, side: 1 | -1): Bound | undefined {
  const a = exclusive === undefined ? undefined : bound(exclusive, false)
  const b = inclusive === undefined ? undefined : bound(inclusive, true)
  if (a === undefined || b === undefined) return a ?? b
  return side * Buffer.compare(a.bytes, b.bytes) >= 0 ? a : b
}

function empty(lo: Bound, hi: Bound): boolean {
  const c = Buffer.compare(lo.bytes, hi.bytes)
  return c > 0 || (c === 0 && !(lo.inclusive && hi.inclusive))
}
