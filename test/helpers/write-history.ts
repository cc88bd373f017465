/**
 * What a crash may leave behind, path by path. Each write is an interval of real time from
 * the moment it was sent to the moment its answer arrived (unanswered: never). A write can be
 * the surviving state only if no acknowledged write *started* after it was answered: such a
 * later write was ordered after it by every observer, so it would have replaced it. Writes
 * that were never answered may or may not have landed, at any point of their interval, so
 * each of them stays possible. With no acknowledged write at all, the state before the
 * round is possible too.
 */
export interface State {
  /** base64 blake3 of the content; null: no file */
  hash: string | null
  size: number
}

export interface Write {
  state: State
  start: number
  /** when the 201/204 arrived; Infinity while unanswered */
  end: number
  acked: boolean
}

export const ABSENT: State = Object.freeze({ hash: null, size: 0 })

export class WriteHistory {
  /** the verified state at the start of the round */
  base: State = ABSENT
  writes: Write[] = []

  begin(state: State, start: number): Write {
    const w: Write = { state, start, end: Infinity, acked: false }
    this.writes.push(w)
    return w
  }

  /** Every state the path may be in now. */
  possible(): State[] {
    const acked = this.writes.filter((w) => w.acked)
    const lastStart = Math.max(-Infinity, ...acked.map((w) => w.start))
    const out = this.writes.filter((w) => !w.acked || w.end >= lastStart).map((w) => w.state)
    if (acked.length === 0) out.push(this.base)
    return out
  }

  /** After verification: what was found becomes the base of the next round. */
  settle(found: State): void {
    this.base = found
    this.writes = []
  }
}

export function sameState(a: State, b: State): boolean {
  return a.hash === b.hash && (a.hash === null || a.size === b.size)
}
