import { DEAD_KEPT, type ConsumerRecord, type DeadLetter, type Outstanding } from '../kv/consumer-record.js'

/**
 * The rules of a consumer's stored state, as pure changes of a ConsumerRecord: each takes the
 * record as the store holds it (under its lock) and returns the record to store. Nothing here
 * reads a clock or the log; `now` and the events read come from the caller.
 *
 *   cursor       every matching event ≤ cursor was read into `outstanding`, or is done
 *   outstanding  events read and not done, in seq order, at most `maxPending` (and READ_AHEAD
 *                not out): out (held by a stream until its deadline), or waiting to go out
 *                (again, or the first time)
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
 * thousands of users at once, few enough that a step's passes over `outstanding` stay short
 * when `maxPending` is large (the events out may still reach `maxPending`).
 */
export const READ_AHEAD = 2048

/** How many more events may be read into `outstanding`: up to `maxPending` in all, and READ_AHEAD of them not out. */
export function room(r: ConsumerRecord): number {
  let waiting = 0
  for (const e of r.outstanding) if (e.holder === undefined) waiting++
  return Math.max(0, Math.min(r.definition.maxPending - r.outstanding.length, READ_AHEAD - waiting))
}

/** Events read from the log after `from` (the cursor they were read from), up to `to`: none are taken if the cursor moved meanwhile. */
export function read(r: ConsumerRecord, from: number, to: number, events: readonly { seq: number; user: string }[], reset?: { requested: number; floor: number }): ConsumerRecord {
  if (r.cursor !== from || to <= from) return r
  const taken = events.slice(0, room(r)).map((ev) => ({ seq: ev.seq, user: ev.user, deliveries: 0 }))
  // no room for the first of them: nothing moves, and a reset waits for the events it comes with
  if (taken.length === 0 && events.length > 0) return r
  const cursor = taken.length < events.length ? taken.at(-1)?.seq ?? from : to
  return { ...r, cursor, outstanding: [...r.outstanding, ...taken], ...(reset === undefined ? {} : { reset }) }
}

/**
 * Holds whose deadline passed end (the event goes out again, to any stream); an event not
 * held that was delivered `maxDeliver` times is dead. Returns the record and the newly dead.
 */
export function settle(r: ConsumerRecord, now: number): { record: ConsumerRecord; dead: DeadLetter[] } {
  const dead: DeadLetter[] = []
  const outstanding: Outstanding[] = []
  let changed = false
  for (const e of r.outstanding) {
    let entry = e
    if (e.holder !== undefined && e.deadline! <= now) {
      entry = { seq: e.seq, user: e.user, deliveries: e.deliveries }
      changed = true
    }
    if (entry.holder === undefined && entry.deliveries >= r.definition.maxDeliver) {
      dead.push({ seq: e.seq, deliveries: e.deliveries, reason: 'maxDeliver' })
      changed = true
      continue
    }
    outstanding.push(entry)
  }
  if (!changed) return { record: r, dead }
  return { record: { ...r, outstanding, dead: kept([...r.dead, ...dead]) }, dead }
}

/** A stream asking for events: its holder name, and how many more it may hold. */
export interface Want {
  holder: string
  n: number
}

/**
 * Hands out events not held, in seq order, to the streams that want them, one each in turn
 * (each stream gets its share, whatever order they asked in), held until `deadline`. With
 * explicit acks, only an event with no earlier outstanding event of its user goes out: one
 * event per user is out at a time, so each user's events are processed in order, and
 * different users' in parallel.
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
  const perUser = r.definition.ack === 'explicit'
  const blocked = new Set<string>()
  const claimed: Outstanding[] = []
  let outstanding: Outstanding[] | undefined
  for (let i = 0; i < r.outstanding.length; i++) {
    const e = r.outstanding[i]!
    let first = true
    if (perUser) {
      const size = blocked.size
      first = blocked.add(e.user).size > size
    }
    if (e.holder !== undefined || !first) continue
    const w = next()
    if (w === undefined) break
    const taken = { ...e, deliveries: e.deliveries + 1, holder: w.holder, deadline }
    outstanding ??= r.outstanding.slice()
    outstanding[i] = taken
    claimed.push(taken)
  }
  return outstanding === undefined ? { record: r, claimed } : { record: { ...r, outstanding }, claimed }
}

/** Whether `claim` would hand anything out now (after `settle`). */
export function deliverable(r: ConsumerRecord): boolean {
  return claim(r, [{ holder: '', n: 1 }], 0).claimed.length > 0
}

/** The soonest deadline of a hold, if any: when `settle` next changes something. */
export function nextDeadline(r: ConsumerRecord): number | undefined {
  let soonest: number | undefined
  for (const e of r.outstanding) if (e.deadline !== undefined && (soonest === undefined || e.deadline < soonest)) soonest = e.deadline
  return soonest
}

export interface Acks {
  ack?: readonly number[]
  nak?: readonly number[]
  term?: readonly number[]
}

/**
 * `ack`: done, it leaves. `nak`: its hold ends now, so it goes out again at once (or is dead
 * when it went out `maxDeliver` times). `term`: dead at once. Seqs that are not out (done
 * already, or never delivered) are passed over: an ack is idempotent.
 */
export function acknowledge(r: ConsumerRecord, acks: Acks): { record: ConsumerRecord; acked: number; dead: DeadLetter[] } {
  const ack = new Set(acks.ack)
  const nak = new Set(acks.nak)
  const term = new Set(acks.term)
  const dead: DeadLetter[] = []
  let acked = 0
  const outstanding: Outstanding[] = []
  for (const e of r.outstanding) {
    if (e.deliveries === 0) {
      outstanding.push(e)
    } else if (term.has(e.seq)) {
      dead.push({ seq: e.seq, deliveries: e.deliveries, reason: 'term' })
    } else if (ack.has(e.seq)) {
      acked++
    } else if (nak.has(e.seq)) {
      outstanding.push({ seq: e.seq, user: e.user, deliveries: e.deliveries })
    } else {
      outstanding.push(e)
    }
  }
  if (outstanding.length === r.outstanding.length && nak.size === 0) return { record: r, acked, dead }
  return { record: { ...r, outstanding, dead: dead.length > 0 ? kept([...r.dead, ...dead]) : r.dead }, acked, dead }
}

/** A stream ended: what it held goes out again at once. */
export function release(r: ConsumerRecord, holder: string): ConsumerRecord {
  if (!r.outstanding.some((e) => e.holder === holder)) return r
  return { ...r, outstanding: r.outstanding.map((e) => (e.holder === holder ? { seq: e.seq, user: e.user, deliveries: e.deliveries } : e)) }
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

function kept(dead: DeadLetter[]): DeadLetter[] {
  return dead.length > DEAD_KEPT ? dead.slice(-DEAD_KEPT) : dead
}
