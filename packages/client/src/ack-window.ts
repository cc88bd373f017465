/** One position a follower handed out (an event) or passed over (a scanned id). */
export interface Entry {
  seq: bigint
  acked: boolean
  /** a scanned position, not an event */
  scanned?: boolean
}

/**
 * What a follower has handed out and what has come back acknowledged.
 *
 * Invariant: every event with seq ≤ `cursor` was acknowledged or never matched, and the
 * entries held are exactly the positions above `cursor`, in seq order. A scanned position
 * enters already acknowledged, so it moves the cursor only once every event before it is.
 */
export class AckWindow {
  cursor: bigint
  #entries: Entry[] = []
  #unacked = 0

  constructor(cursor: bigint) {
    this.cursor = cursor
  }

  /** Events handed out and not yet acknowledged. */
  get unacked(): number {
    return this.#unacked
  }

  /** Positions kept above the cursor: events handed out, and runs of scanned positions between them. */
  get held(): number {
    return this.#entries.length
  }

  deliver(seq: bigint): Entry {
    const entry = { seq, acked: false }
    this.#entries.push(entry)
    this.#unacked++
    return entry
  }

  /** A position the stream scanned past without a matching event. True when the cursor moved. */
  pass(seq: bigint): boolean {
    if (seq <= this.cursor) return false
    // scanned positions in a row behind one unacked event are one entry: the window stays as
    // long as the events in it, however long the stream scans
    const last = this.#entries[this.#entries.length - 1]
    if (last?.scanned === true) last.seq = seq
    else this.#entries.push({ seq, acked: true, scanned: true })
    return this.#advance()
  }

  /** True when the cursor moved. */
  ack(entry: Entry): boolean {
    if (entry.acked) return false
    entry.acked = true
    this.#unacked--
    return this.#advance()
  }

  #advance(): boolean {
    let moved = false
    let drop = 0
    while (drop < this.#entries.length && this.#entries[drop]!.acked) {
      const seq = this.#entries[drop++]!.seq
      if (seq > this.cursor) {
        this.cursor = seq
        moved = true
      }
    }
    if (drop > 0) this.#entries.splice(0, drop)
    return moved
  }
}
