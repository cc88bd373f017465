import type { HearthEvent } from '../events/event.js'
import { firstFrom } from './seq-order.js'

/**
 * The events a run read and has not seen done, so that a delivery (a first one, or one again)
 * needs no read of the log: a list in seq order, looked up by halving. The events a run takes
 * come in seq order after every one it holds, so adding them is a push; a Map set per event,
 * as this once was, was 3% of a busy server's main thread.
 */
export class EventCache {
  #events: HearthEvent[] = []

  get size(): number {
    return this.#events.length
  }

  /** Keeps `ev`: at the end when it follows every event kept (the usual case), else in its place. */
  add(ev: HearthEvent): void {
    const events = this.#events
    if (events.length === 0 || events[events.length - 1]!.seq < ev.seq) return void events.push(ev)
    const at = firstFrom(events, ev.seq)
    if (events[at]?.seq === ev.seq) events[at] = ev
    else events.splice(at, 0, ev)
  }

  get(seq: number): HearthEvent | undefined {
    const ev = this.#events[firstFrom(this.#events, seq)]
    return ev?.seq === seq ? ev : undefined
  }

  /** Keeps only the events whose seqs `seqs` (in order) holds. */
  keep(seqs: readonly { seq: number }[]): void {
    const kept: HearthEvent[] = []
    let j = 0
    for (const ev of this.#events) {
      while (j < seqs.length && seqs[j]!.seq < ev.seq) j++
      if (j < seqs.length && seqs[j]!.seq === ev.seq) kept.push(ev)
    }
    this.#events = kept
  }
}
