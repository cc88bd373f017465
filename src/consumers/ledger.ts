import { DEAD_KEPT, type ConsumerRecord, type DeadLetter, type Outstanding } from '../kv/consumer-record.js'
import { forget, handOver, indexOf, tallyOf, type Tally } from './ledger-index.js'
import { position } from './seq-order.js'

/**
 * The rules of a consumer's stored state, as pure changes of a ConsumerRecord: each takes the
 * record as the store holds it (under its lock) and returns the record to store. Nothing here
 * reads a clock or the log; `now` and the events read come from the caller.
 *
 *   cursor       every matching event ≤ cursor was read into `outstanding`, or is done
 *   outstanding  events read and not done, in seq order: out (held by a stream until its
 *                deadline; at most `maxPending`), or waiting to go out (again, or the first
 *                time; no more is read while READ_AHEAD wait). At most `maxPending` +
 *                READ_AHEAD in all: a hold that ends turns an event out into one waiting.
 *   ack floor    the seq before the first outstanding event (the cursor when none is): every
 *                matching event at or below it is done (acked, dead, or out in automatic mode)
 *
 * An acked event simply leaves `outstanding`, so the record holds the floor and what lies
 * above it, never the history.
 */

export function ackFloor(r: ConsumerRecord): number {
  return r.outstanding.length > 0 ? r.outstanding[0]!.seq - 1 : r.cursor
}

/**
 * Events read ahead and not out, at most: enough for the streams to find the next event of
 * thousands of users at once, few enough that what a change still does per event outstanding
 * (a copy of the list; the journal's comparison of the record before and after) stays short
 * when `maxPending` is large (the events out may still reach `maxPending`). It is also how far
 * the users proceed in parallel: past READ_AHEAD events waiting behind one user's unacked
 * event, another user's next event is not read until some of them go.
 */
export const READ_AHEAD = 2048

/**
 * How many more events may be read into `outstanding`: up to READ_AHEAD not out. The events
 * out do not count (`claim` keeps them to `maxPending`): were they to, the events of one user
 * filling `maxPending`, which go out one at a time, would keep every other user's from being read.
 */
export function room(r: ConsumerRecord): number {
  return Math.max(0, READ_AHEAD - tally(r).waiting)
}

export type { Tally }

/** What a record's outstanding events add up to (kept from record to record: ledger-index.ts). */
export function tally(r: ConsumerRecord): Tally {
  return tallyOf(r)
}

/** Events read from the log after `from` (the cursor they were read from), up to `to`: none are taken if the cursor moved meanwhile. */
export function read(r: ConsumerRecord, from: number, to: number, events: readonly { seq: number; user: string }[], reset?: { requested: number; floor: number }): ConsumerRecord {
  if (r.cursor !== from || to <= from) return r
  const taken = events.slice(0, room(r)).map((ev) => ({ seq: ev.seq, user: ev.user, deliveries: 0 }))
  // no room for the first of them: nothing moves, and a reset waits for the events it comes with
  if (taken.length === 0 && events.length > 0) return r
  const cursor = taken.length < events.length ? taken.at(-1)?.seq ?? from : to
  const record = { ...r, cursor, outstanding: [...r.outstanding, ...taken], ...(reset === undefined ? {} : { reset }) }
  const index = handOver(r, record)
  if (index !== undefined) for (const e of taken) index.read(e)
  return record
}

/**
 * Holds whose deadline passed end (the event goes out again, to any stream); an event not
 * held that was delivered `maxDeliver` times is dead. Returns the record and the newly dead.
 */
export function settle(r: ConsumerRecord, now: number): { record: ConsumerRecord; dead: DeadLetter[] } {
  // most steps end no hold, and find so without a pass over the record
  const index = indexOf(r)
  if (index.exhausted === 0 && (index.deadline === undefined || index.deadline > now)) return { record: r, dead: [] }
  const ends = (e: Outstanding) => e.holder === undefined ? e.deliveries >= r.definition.maxDeliver : e.deadline! <= now
  const first = r.outstanding.findIndex(ends)
  if (first === -1) {
    // the soonest hold was done with: the bound was early
    index.exact(soonest(r.outstanding))
    return { record: r, dead: [] }
  }
  const dead: DeadLetter[] = []
  const outstanding = r.outstanding.slice(0, first)
  for (let i = first; i < r.outstanding.length; i++) {
    const e = r.outstanding[i]!
    const entry = e.holder !== undefined && e.deadline! <= now ? unheld(e) : e
    if (entry.holder === undefined && entry.deliveries >= r.definition.maxDeliver) {
      dead.push({ seq: e.seq, deliveries: e.deliveries, reason: 'maxDeliver' })
      continue
    }
    outstanding.push(entry)
  }
  return { record: { ...r, outstanding, dead: dead.length > 0 ? keptDead([...r.dead, ...dead]) : r.dead }, dead }
}

/** A stream asking for events: its holder name, and how many more it may hold. */
export interface Want {
  holder: string
  n: number
}

/**
 * Hands out events not held, in seq order, to the streams that want them, one each in turn
 * (each stream gets its share, whatever order they asked in), held until `deadline`, while
 * fewer than `maxPending` are out. With explicit acks, only an event with no earlier
 * outstanding event of its user goes out: one event per user is out at a time, so each
 * user's events are processed in order, and different users' in parallel.
 */
export function claim(r: ConsumerRecord, wants: readonly Want[], deadline: number): { record: ConsumerRecord; claimed: Outstanding[] } {
  const left = wants.map((w) => ({ ...w }))
  let turn = 0
  const next = (): Want | undefined => {
    for (let i = 0; i < left.length; i++) {
      const w = left[(turn + i) % left.length]!
      if (w.n > 0) {
        turn = (turn + i + 1) % left.length
        w.n--
        return w
      }
    }
    return undefined
  }
  const index = indexOf(r)
  const budget = Math.min(r.definition.maxPending - index.out, index.ready.length)
  if (budget <= 0 || !wants.some((w) => w.n > 0)) return { record: r, claimed: [] }
  // the events that may go out, in seq order (with explicit acks, the first outstanding of
  // each user not out): the index keeps them, so a claim looks at no other
  const outstanding = r.outstanding.slice()
  const claimed: Outstanding[] = []
  const pairs: [Outstanding, Outstanding][] = []
  for (let k = 0; k < budget; k++) {
    const w = next()
    if (w === undefined) break
    const i = position(outstanding, index.ready[k]!)
    const e = outstanding[i]
    // an index that disagrees with its record (no change makes one) is built again from it
    if (e === undefined || e.holder !== undefined) {
      forget(r)
      return claim(r, wants, deadline)
    }
    const taken = { seq: e.seq, user: e.user, deliveries: e.deliveries + 1, holder: w.holder, deadline }
    outstanding[i] = taken
    claimed.push(taken)
    pairs.push([e, taken])
  }
  if (claimed.length === 0) return { record: r, claimed }
  const record = { ...r, outstanding }
  handOver(r, record)!.claimed(claimed.length, pairs)
  return { record, claimed }
}

/** No hold ends before this (a bound: the soonest deadline, or earlier): when `settle` may next change something. */
export function nextDeadline(r: ConsumerRecord): number | undefined {
  return tallyOf(r).deadline
}

/** An event a nak or term is about, and the delivery of it, when named (its `deliveries`). */
export interface Delivered {
  seq: number
  deliveries?: number
}

export interface Acks {
  ack?: readonly number[]
  nak?: readonly Delivered[]
  term?: readonly Delivered[]
}

/**
 * `ack`: done, it leaves. `nak`: its hold ends now, so it goes out again at once (or is dead
 * when it went out `maxDeliver` times). `term`: dead at once. Seqs that are not out (done
 * already, or never delivered) are passed over: an ack is idempotent. An ack counts whoever
 * sends it and whichever delivery it is of (the event was processed), but a nak or term that
 * names its delivery is passed over once the event went out again: it is about a hold that
 * ended (the worker's stream closed, or its handler outlasted the ack wait), and ending the
 * hold that followed would put the event in two handlers' hands at once.
 */
export function acknowledge(r: ConsumerRecord, acks: Acks): { record: ConsumerRecord; acked: number; dead: DeadLetter[] } {
  // the indexes of the named events that are out, and what those not simply acked become:
  // term over ack over nak (naks are named first, then acks, then terms)
  const marks: number[] = []
  let fates: Map<number, 'nak' | 'term'> | undefined
  const out = (seq: number, deliveries?: number): number => {
    const i = position(r.outstanding, seq)
    const e = r.outstanding[i]
    return e !== undefined && e.deliveries > 0 && (deliveries === undefined || deliveries === e.deliveries) ? i : -1
  }
  for (const d of acks.nak ?? []) {
    const i = out(d.seq, d.deliveries)
    if (i === -1) continue
    marks.push(i)
    ;(fates ??= new Map()).set(i, 'nak')
  }
  for (const seq of acks.ack ?? []) {
    const i = out(seq)
    if (i === -1) continue
    marks.push(i)
    fates?.delete(i)
  }
  for (const d of acks.term ?? []) {
    const i = out(d.seq, d.deliveries)
    if (i === -1) continue
    marks.push(i)
    ;(fates ??= new Map()).set(i, 'term')
  }
  if (marks.length === 0) return { record: r, acked: 0, dead: [] }
  // workers ack in the order events came, so the indexes are mostly in order already; an
  // event named twice counts once
  if (!ascending(marks)) marks.sort((x, y) => x - y)
  const distinct = marks.filter((i, m) => m === 0 || i !== marks[m - 1])
  const dead: DeadLetter[] = []
  let acked = 0
  // one copy of the list, changed in place from the first index named: an ack request names
  // dozens of a list of thousands, and growing a new list entry by entry cost more than the rest
  const outstanding = r.outstanding.slice()
  /** each event named, and what it became when it stays */
  const named: { e: Outstanding; after?: Outstanding }[] = []
  let kept = distinct[0]!
  for (let m = 0; m < distinct.length; m++) {
    const i = distinct[m]!
    const e = r.outstanding[i]!
    const kind = fates?.get(i) ?? 'ack'
    if (kind === 'term') dead.push({ seq: e.seq, deliveries: e.deliveries, reason: 'term' })
    else if (kind === 'ack') acked++
    else outstanding[kept++] = unheld(e)
    named.push(kind === 'nak' ? { e, after: outstanding[kept - 1]! } : { e })
    // the entries up to the next index named stay as they are
    const end = distinct[m + 1] ?? r.outstanding.length
    for (let j = i + 1; j < end; j++) outstanding[kept++] = r.outstanding[j]!
  }
  outstanding.length = kept
  const record = { ...r, outstanding, dead: dead.length > 0 ? keptDead([...r.dead, ...dead]) : r.dead }
  const index = handOver(r, record)
  if (index !== undefined) {
    const entry = (seq: number) => outstanding[position(outstanding, seq)]
    for (const { e, after } of named) {
      if (after === undefined) index.left(e, entry)
      else index.unheld(e, after)
    }
  }
  return { record, acked, dead }
}

/** A stream ended: what it held goes out again at once. */
export function release(r: ConsumerRecord, holder: string): ConsumerRecord {
  if (!r.outstanding.some((e) => e.holder === holder)) return r
  return { ...r, outstanding: r.outstanding.map((e) => (e.holder === holder ? unheld(e) : e)) }
}

/** Events the log no longer holds (pruned while outstanding): they leave, and the record says so. */
export function pruned(r: ConsumerRecord, seqs: ReadonlySet<number>, floor: number): ConsumerRecord {
  if (seqs.size === 0) return r
  const first = r.outstanding.find((e) => seqs.has(e.seq))
  if (first === undefined) return r
  return { ...r, outstanding: r.outstanding.filter((e) => !seqs.has(e.seq)), reset: { requested: first.seq - 1, floor } }
}

/** `POST …/reset`: a new position, and nothing outstanding. */
export function reposition(r: ConsumerRecord, cursor: number): ConsumerRecord {
  const { reset: _, ...rest } = r
  return { ...rest, cursor, outstanding: [] }
}

/** Whether `list` is in ascending order (equal neighbours allowed). */
function ascending(list: readonly number[]): boolean {
  for (let i = 1; i < list.length; i++) if (list[i]! < list[i - 1]!) return false
  return true
}

/** An entry whose hold ended (its ack wait ran out, a nak, its stream gone): out again to any stream, its deliveries counted. */
function unheld(e: Outstanding): Outstanding {
  return { seq: e.seq, user: e.user, deliveries: e.deliveries }
}

/** The soonest deadline of a hold in `outstanding`. */
function soonest(outstanding: readonly Outstanding[]): number | undefined {
  let at: number | undefined
  for (const e of outstanding) if (e.deadline !== undefined && (at === undefined || e.deadline < at)) at = e.deadline
  return at
}

function keptDead(dead: DeadLetter[]): DeadLetter[] {
  return dead.length > DEAD_KEPT ? dead.slice(-DEAD_KEPT) : dead
}
