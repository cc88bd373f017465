import type { ConsumerRecord, Outstanding } from './consumer-record.js'

/**
 * How the engines store a consumer's record in parts, so that a change writes only what it
 * changed: the head (everything but `outstanding`: definition, cursor, dead letters, the last
 * reset) as one entry; the outstanding events as a snapshot (one text) and a journal of the
 * changes since, one text per change (changeText): claiming 200 events out of 10,000
 * outstanding writes a line for each of those 200, in one entry, not the 10,000, and not 200
 * entries. Every JOURNAL_MOST changes the next one writes a new snapshot instead, so a record
 * is read back from its snapshot and at most that many changes (replayChanges).
 *
 * The changes of a record (src/consumers/ledger.ts) never mutate it: they return a new record
 * that keeps every part they did not touch — the same `dead` array, the same entry objects —
 * so what changed is found by comparing references, in one pass over the two lists.
 */
export type ConsumerHead = Omit<ConsumerRecord, 'outstanding'>

export function headOf(r: ConsumerRecord): ConsumerHead {
  const { outstanding: _, ...head } = r
  return head
}

/** Whether the head of `after` differs from that of `before` in more than the cursor (which travels in the change's text). */
function headChangedBesidesCursor(before: ConsumerRecord, after: ConsumerRecord): boolean {
  return before.dead !== after.dead || before.reset !== after.reset ||
    before.definition !== after.definition || before.capabilities !== after.capabilities || before.createdAt !== after.createdAt
}

/**
 * What storing `after` over `before` writes, short of a fold: the head (JSON), when it changed
 * in more than the cursor; the change's text (changeText), when the cursor or an outstanding
 * entry changed. Neither: nothing changed.
 */
export function journalEntry(before: ConsumerRecord, after: ConsumerRecord): { head?: string; text?: string } {
  const { put, del, held } = outstandingChanges(before.outstanding, after.outstanding)
  return {
    ...(headChangedBesidesCursor(before, after) ? { head: JSON.stringify(headOf(after)) } : {}),
    ...(put.length > 0 || del.length > 0 || held.length > 0 || after.cursor !== before.cursor ? { text: changeText(after.cursor, put, del, held) } : {}),
  }
}

/** Whether a journal of `changes` entries and `size` characters is folded into a snapshot by the next change. */
export function folds(changes: number, size: number): boolean {
  return changes >= JOURNAL_MOST || size >= JOURNAL_BYTES
}

/** A snapshot of the outstanding entries: the change from nothing. */
export function snapshotText(r: ConsumerRecord): string {
  return changeText(r.cursor, r.outstanding, [])
}

/** What storing `after` over `before` changes of the outstanding entries (changeText). */
export interface OutstandingChanges {
  /** entries to write whole */
  put: Outstanding[]
  /** seqs to take out */
  del: number[]
  /** entries stored already, of the same user, now held: only their hold is written */
  held: Outstanding[]
}

/** The outstanding entries to write, the seqs to delete, and the holds to write, so that the stored `before` becomes `after`. */
export function outstandingChanges(before: readonly Outstanding[], after: readonly Outstanding[]): OutstandingChanges {
  const put: Outstanding[] = []
  const del: number[] = []
  const held: Outstanding[] = []
  // both lists are in seq order: one merging pass, which checks that order as it goes
  let i = 0
  let j = 0
  let last = -Infinity
  while (i < before.length || j < after.length) {
    const b = before[i]
    const a = after[j]
    if (a === undefined || (b !== undefined && b.seq < a.seq)) {
      if (b!.seq <= last) return unordered(before, after)
      last = b!.seq
      del.push(b!.seq)
      i++
    } else if (b === undefined || a.seq < b.seq) {
      if (a.seq <= last) return unordered(before, after)
      last = a.seq
      put.push(a)
      j++
    } else {
      if (a.seq <= last) return unordered(before, after)
      last = a.seq
      if (a !== b && !sameEntry(a, b)) (a.holder !== undefined && a.user === b.user ? held : put).push(a)
      i++
      j++
    }
  }
  return { put, del, held }
}

function sameEntry(a: Outstanding, b: Outstanding): boolean {
  return a === b || (a.seq === b.seq && a.user === b.user && a.deliveries === b.deliveries && a.holder === b.holder && a.deadline === b.deadline)
}

/** The same, for lists out of seq order (no change of the ledger makes one; a guard, not a path). */
function unordered(before: readonly Outstanding[], after: readonly Outstanding[]): OutstandingChanges {
  const old = new Map(before.map((e) => [e.seq, e]))
  const seqs = new Set(after.map((e) => e.seq))
  return {
    put: after.filter((e) => old.get(e.seq) === undefined || !sameEntry(e, old.get(e.seq)!)),
    del: before.filter((e) => !seqs.has(e.seq)).map((e) => e.seq),
    held: [],
  }
}

/**
 * A change of a record as text, as the engines journal them: `c<cursor>`, then
 * `+<seq in hex> <entry>` (encodeEntry) for each outstanding entry put, `-<seq in hex>` for
 * each taken out, and for the entries stored already that a stream now holds, under a line
 * `h<deadline> <holder>` for each hold, `~<seq in hex> <deliveries>` (the entry keeps its
 * user). A snapshot is the change from nothing: every entry put. A change writes a line per
 * event it reads, leases or hands back, so the lines are kept short: as JSON a lease took 167
 * bytes, as an entry put 84, as a hold 8 (the holds of a step share their deadline, and a
 * stream's their holder). The bytes written are work for the engine's log, its compactions
 * and the garbage collector, on every commit.
 */
export function changeText(cursor: number, put: readonly Outstanding[], del: readonly number[], held: readonly Outstanding[] = []): string {
  const lines = [`c${cursor}`]
  for (const e of put) lines.push(`+${hex(e.seq)} ${encodeEntry(e)}`)
  for (const seq of del) lines.push(`-${hex(seq)}`)
  // a few holds (a stream each, one deadline per step): found by a look along them, with no key made per entry
  const holds: { holder: string; deadline: number; lines: string[] }[] = []
  for (const e of held) {
    let hold = holds.find((h) => h.holder === e.holder && h.deadline === e.deadline)
    if (hold === undefined) holds.push((hold = { holder: e.holder!, deadline: e.deadline!, lines: [`h${e.deadline!} ${e.holder!}`] }))
    hold.lines.push(`~${hex(e.seq)} ${e.deliveries}`)
  }
  for (const hold of holds) for (const line of hold.lines) lines.push(line)
  lines.push('')
  return lines.join('\n')
}

/** Two hex digits of each byte. */
const BYTE_HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'))

/**
 * `seq.toString(16)`, a byte at a time: a change writes a seq per line, and Number's radix
 * conversion (a path for any double) took three times as long.
 */
export function hex(seq: number): string {
  // a seq comes from the log or from text written here: anything else is written as it always was
  if (!Number.isSafeInteger(seq) || seq < 0) return seq.toString(16)
  let out = ''
  while (seq >= 256) {
    out = BYTE_HEX[seq % 256]! + out
    seq = Math.floor(seq / 256)
  }
  return (seq < 16 ? BYTE_HEX[seq]![1]! : BYTE_HEX[seq]!) + out
}

/** `record` with the changes `texts` (changeText) applied in order: its cursor and outstanding entries. */
export function replayChanges(record: ConsumerRecord, texts: readonly string[]): ConsumerRecord {
  if (texts.length === 0) return record
  let cursor = record.cursor
  const entries = new Map(record.outstanding.map((e) => [e.seq, e]))
  for (const text of texts) {
    let hold: { holder: string; deadline: number } | undefined
    for (const line of text.split('\n')) {
      if (line.startsWith('c')) {
        cursor = Number(line.slice(1))
      } else if (line.startsWith('h')) {
        const space = line.indexOf(' ')
        hold = { deadline: Number(line.slice(1, space)), holder: line.slice(space + 1) }
      } else if (line.startsWith('~') && hold !== undefined) {
        const space = line.indexOf(' ')
        const seq = parseInt(line.slice(1, space), 16)
        const stored = entries.get(seq)
        if (stored === undefined) throw new Error(`A consumer's stored changes hold event ${seq}, which they never put`)
        entries.set(seq, { seq, user: stored.user, deliveries: Number(line.slice(space + 1)), holder: hold.holder, deadline: hold.deadline })
      } else if (line.startsWith('+')) {
        const space = line.indexOf(' ')
        const seq = parseInt(line.slice(1, space), 16)
        entries.set(seq, decodeEntry(seq, line.slice(space + 1)))
      } else if (line.startsWith('-')) {
        entries.delete(parseInt(line.slice(1), 16))
      } else if (line !== '') {
        // nothing writes one: a record read wrong is worse than one not read
        throw new Error(`A consumer's stored changes hold a line that is not one: ${JSON.stringify(line.slice(0, 40))}`)
      }
    }
  }
  return { ...record, cursor, outstanding: [...entries.values()].sort((a, b) => a.seq - b.seq) }
}

/** A journal this long is folded into a snapshot by the next change: a record is read back from its snapshot and at most this many changes. */
export const JOURNAL_MOST = 64
/** Or this large (a change of many entries at once writes a long one). */
export const JOURNAL_BYTES = 2 * 1024 * 1024

/** An outstanding entry without its seq: `<deliveries> <deadline> <holder> <user>`, the deadline and holder empty while it is not out. */
export function encodeEntry(e: Outstanding): string {
  return `${e.deliveries} ${e.deadline ?? ''} ${e.holder ?? ''} ${e.user}`
}

export function decodeEntry(seq: number, text: string): Outstanding {
  const [deliveries, deadline, holder] = text.split(' ', 3) as [string, string, string]
  const user = text.slice(deliveries.length + deadline.length + holder.length + 3)
  return holder === '' ? { seq, user, deliveries: Number(deliveries) } : { seq, user, deliveries: Number(deliveries), holder, deadline: Number(deadline) }
}

/**
 * Records an engine read or stored, with the version it stood at, most recently used kept,
 * so a change of a consumer starts from the decoded record rather than re-reading every
 * entry. An engine uses an entry only when the stored version is the one it holds (PostgreSQL
 * checks it inside the change's transaction; LevelDB has one process, and every change goes
 * through it). `T` is what the engine keeps of a record: the record itself, or more.
 */
export class RecordCache<T = ConsumerRecord> {
  readonly #max: number
  readonly #records = new Map<string, { version: number; record: T }>()

  constructor(max: number) {
    this.#max = max
  }

  /** What is kept of the record, if it stood at `version`. */
  get(owner: string, id: string, version: number): T | undefined {
    const hit = this.peek(owner, id)
    return hit !== undefined && hit.version === version ? hit.record : undefined
  }

  /** What is kept of the record, with its version, whatever it is. */
  peek(owner: string, id: string): { version: number; record: T } | undefined {
    const key = `${owner}/${id}`
    const hit = this.#records.get(key)
    if (hit === undefined) return undefined
    this.#records.delete(key)
    this.#records.set(key, hit)
    return hit
  }

  set(owner: string, id: string, version: number, record: T): void {
    const key = `${owner}/${id}`
    this.#records.delete(key)
    this.#records.set(key, { version, record })
    if (this.#records.size > this.#max) this.#records.delete(this.#records.keys().next().value!)
  }

  drop(owner: string, id: string): void {
    this.#records.delete(`${owner}/${id}`)
  }
}

/** How many decoded records an engine keeps: at most maxPending + READ_AHEAD entries each. */
export const CACHED_RECORDS = 64
