import type { ConsumerRecord, Outstanding } from '../kv/consumer-record.js'

/** What a record's outstanding events add up to. */
export interface Tally {
  /** not out: read ahead, or back after a hold ended */
  readonly waiting: number
  /** held by a stream */
  readonly out: number
  /** delivered and not done (out, or waiting to go out again) */
  readonly pending: number
  /** of those, delivered more than once */
  readonly redelivered: number
  /** events out, by holder */
  readonly held: ReadonlyMap<string, number>
  /** no hold ends before this (the soonest deadline, or earlier: a bound, made exact by `settle` once it passes) */
  readonly deadline: number | undefined
}

/**
 * A record's tally, and which of its outstanding events `claim` may hand out now, kept from
 * record to record: a change of the ledger (ledger.ts) that starts from a record with an index
 * takes that index over for the record it returns and applies to it what it changed, so a
 * step costs what it touches rather than passes over every event outstanding (thousands, and
 * up to `maxPending` + READ_AHEAD) at each commit. A record whose index was taken over, or
 * that came from elsewhere (the store, a change that does not keep one), gets a new one built
 * in one pass when asked. Records are never changed in place, so an index is right for the
 * one record it is kept for.
 */
export class LedgerIndex implements Tally {
  waiting = 0
  out = 0
  pending = 0
  redelivered = 0
  readonly held = new Map<string, number>()
  deadline: number | undefined
  /** events not out that went out `maxDeliver` times: `settle` parks them as dead */
  exhausted = 0
  /** with explicit acks, each user's outstanding seqs, in order (automatic acks need none: every event not out may go out) */
  readonly #users = new Map<string, number[]>()
  /** the seqs `claim` may hand out, in order: not out, and (explicit acks) the first outstanding of their user */
  readonly ready: number[] = []
  readonly #perUser: boolean
  readonly #maxDeliver: number

  constructor(r: ConsumerRecord) {
    this.#perUser = r.definition.ack === 'explicit'
    this.#maxDeliver = r.definition.maxDeliver
    for (const e of r.outstanding) this.#add(e)
  }

  /** An event read, after every one outstanding. */
  read(e: Outstanding): void {
    this.#add(e)
  }

  /** An event after every one counted so far. */
  #add(e: Outstanding): void {
    this.#count(e, 1)
    if (!this.#perUser) {
      if (e.holder === undefined) this.ready.push(e.seq)
      return
    }
    let queue = this.#users.get(e.user)
    if (queue === undefined) this.#users.set(e.user, (queue = []))
    if (e.holder === undefined && queue.length === 0) this.ready.push(e.seq)
    queue.push(e.seq)
  }

  /** The first `n` of `ready` went out, each `before` became its `after`. */
  claimed(n: number, pairs: readonly (readonly [Outstanding, Outstanding])[]): void {
    this.ready.splice(0, n)
    for (const [before, after] of pairs) this.#swap(before, after)
  }

  /** `before` became `after` (a nak: the same event, no longer out). */
  unheld(before: Outstanding, after: Outstanding): void {
    this.#swap(before, after)
    const queue = this.#users.get(after.user)
    if (!this.#perUser || queue?.[0] === after.seq) insert(this.ready, after.seq)
  }

  /** `e` left (acked, dead); `entry` finds an event of the record that follows. */
  left(e: Outstanding, entry: (seq: number) => Outstanding | undefined): void {
    this.#count(e, -1)
    if (e.holder === undefined) remove(this.ready, e.seq)
    const queue = this.#users.get(e.user)
    if (queue === undefined) return
    // mostly the first: a user's events are acked in order (shift, unlike splice, makes no array of what it took)
    const at = queue[0] === e.seq ? 0 : queue.indexOf(e.seq)
    if (at === 0) queue.shift()
    else if (at !== -1) queue.splice(at, 1)
    if (queue.length === 0) return void this.#users.delete(e.user)
    // the user's next event is the first now: it may go out, unless it is out already, or
    // leaves in the same change (its own `left` then looks at the one after it)
    const next = at === 0 ? entry(queue[0]!) : undefined
    if (next !== undefined && next.holder === undefined) insert(this.ready, next.seq)
  }

  /** What it adds up to now, to keep for a record whose index goes on to the next. */
  counts(): Tally {
    return { waiting: this.waiting, out: this.out, pending: this.pending, redelivered: this.redelivered, held: new Map(this.held), deadline: this.deadline }
  }

  /** After a pass over the record found no hold ending before `deadline`: the bound is exact again. */
  exact(deadline: number | undefined): void {
    this.deadline = deadline
  }

  #swap(before: Outstanding, after: Outstanding): void {
    this.#count(before, -1)
    this.#count(after, 1)
  }

  /** Adds (`sign` 1) or takes out (-1) what one event counts for. */
  #count(e: Outstanding, sign: 1 | -1): void {
    if (e.holder === undefined) {
      this.waiting += sign
      if (e.deliveries >= this.#maxDeliver) this.exhausted += sign
    } else {
      this.out += sign
      const n = (this.held.get(e.holder) ?? 0) + sign
      if (n === 0) this.held.delete(e.holder)
      else this.held.set(e.holder, n)
      // a hold added lowers the bound; one taken out leaves it, still a bound
      if (sign === 1 && (this.deadline === undefined || e.deadline! < this.deadline)) this.deadline = e.deadline
    }
    if (e.deliveries > 0) this.pending += sign
    if (e.deliveries > 1) this.redelivered += sign
  }

}

const indexes = new WeakMap<ConsumerRecord, LedgerIndex>()
/**
 * What records whose index went on to the next add up to: a record is still read after its
 * change (the answer to an ack request states its pending events once it is durable, when
 * the next group may have started from it), and a pass over it for that was a tenth of the
 * work of a busy consumer.
 */
const tallies = new WeakMap<ConsumerRecord, Tally>()

/** What `r` adds up to: from its index, or from what it kept when its index went on. Read at once: an index changes as it goes on. */
export function tallyOf(r: ConsumerRecord): Tally {
  return indexes.get(r) ?? tallies.get(r) ?? indexOf(r)
}

/** The index of `r`, built when it has none. */
export function indexOf(r: ConsumerRecord): LedgerIndex {
  let index = indexes.get(r)
  if (index === undefined) indexes.set(r, (index = new LedgerIndex(r)))
  return index
}

/** Drops the index of `r`: the next ask builds it from the record. */
export function forget(r: ConsumerRecord): void {
  indexes.delete(r)
}

/**
 * The index `from` has, handed over to `to` (the record a change made of it), for the change
 * to apply what it did; undefined when `from` has none (`to` gets one built when asked).
 */
export function handOver(from: ConsumerRecord, to: ConsumerRecord): LedgerIndex | undefined {
  const index = indexes.get(from)
  if (index === undefined) return undefined
  indexes.delete(from)
  tallies.set(from, index.counts())
  indexes.set(to, index)
  return index
}

/** Inserts `seq` into the ordered `list`, unless there. */
function insert(list: number[], seq: number): void {
  const at = lowerBound(list, seq)
  if (list[at] !== seq) list.splice(at, 0, seq)
}

function remove(list: number[], seq: number): void {
  const at = lowerBound(list, seq)
  if (list[at] === seq) list.splice(at, 1)
}

/** The first index of the ordered `list` whose value is not below `seq`. */
function lowerBound(list: readonly number[], seq: number): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list[mid]! < seq) lo = mid + 1
    else hi = mid
  }
  return lo
}
