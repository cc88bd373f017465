/** Lists in seq order (a record's outstanding events, a run's events read), searched by halving. */

/** The first index of `list` whose seq is not below `seq` (the list's length when none is). */
export function firstFrom(list: readonly { seq: number }[], seq: number): number {
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list[mid]!.seq < seq) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Where `seq` lies in `list`, or -1. */
export function position(list: readonly { seq: number }[], seq: number): number {
  const at = firstFrom(list, seq)
  return list[at]?.seq === seq ? at : -1
}
