import { allDone } from '../all-done.js'
import type { CommitTx, FileRef } from '../kv/store.js'
import { fileAncestors } from '../paths.js'

/** How far the stored tree reaches down one path. */
export interface Reach {
  /** the folders above the path (`fileAncestors`, shallowest first) */
  ancestors: string[]
  /** how many of them, from the top, have a stored file below them */
  filled: number
  /** how many stored files lie below the path itself, up to the cap (0, not asked, when its folder holds none) */
  under: number
}

/**
 * For each path, how far the stored tree reaches down it, in O(log depth) reads of folder
 * counts rather than one read per folder above it.
 *
 * A folder holds a file when one lies anywhere below it, so every folder above a filled one is
 * filled too: the filled folders above a path are a run from the top. The deepest folder above
 * the path (the one it would be stored in) is asked first: most PUTs go to a folder that exists,
 * and then one read answers. Otherwise the search probes from the top, at folders 1, 3, 7, 15
 * and so on, until one is empty, then halves what is left: a new chain of folders most often
 * starts near the top, where an engine's counts are cheapest, and either way it takes
 * O(log depth) rounds. Each round asks `countUnder` once for every path still searching.
 *
 * Stored files never lie below another (the writer's rule), so a filled folder is not a file,
 * and nothing below an empty one is: of the folders above a path, only the first unfilled one
 * can be a stored file, and only a path whose folder is filled can have files below it. `cap`
 * bounds the count below each path, as for `countUnder`; the folders above are asked only
 * whether they hold a file.
 */
export async function reachOf(tx: CommitTx, paths: readonly FileRef[], cap: number): Promise<Reach[]> {
  const out: Reach[] = paths.map((p) => ({ ancestors: fileAncestors(p.path), filled: 0, under: 0 }))
  const withFolder = paths.flatMap((p, i) => (out[i]!.ancestors.length > 0 ? [i] : []))
  const deepest = await tx.countUnder(withFolder.map((i) => ({ user: paths[i]!.user, path: out[i]!.ancestors.at(-1)! })), 1)
  const open: Search[] = []
  withFolder.forEach((i, n) => {
    const depth = out[i]!.ancestors.length
    if (deepest[n]! > 0) out[i]!.filled = depth
    else if (depth > 1) open.push({ i, lo: 0, hi: depth, rising: true })
  })
  const below = paths.flatMap((_, i) => (out[i]!.filled === out[i]!.ancestors.length ? [i] : []))
  const [under] = await allDone([tx.countUnder(below.map((i) => paths[i]!), cap), search(tx, paths, out, open)])
  below.forEach((i, n) => (out[i]!.under = under[n]!))
  return out
}

/** A search still open: folders 1..lo are filled, folder hi is not (1-based). */
interface Search {
  i: number
  lo: number
  hi: number
  /** still probing from the top: no probe has found an empty folder yet */
  rising: boolean
}

async function search(tx: CommitTx, paths: readonly FileRef[], out: Reach[], open: Search[]): Promise<void> {
  while (open.length > 0) {
    const probes = open.map((s) => (s.rising ? Math.min(2 * s.lo + 1, s.hi - 1) : (s.lo + s.hi) >> 1))
    const counts = await tx.countUnder(open.map((s, n) => ({ user: paths[s.i]!.user, path: out[s.i]!.ancestors[probes[n]! - 1]! })), 1)
    open.forEach((s, n) => {
      if (counts[n]! > 0) s.lo = probes[n]!
      else [s.hi, s.rising] = [probes[n]!, false]
      if (s.hi - s.lo === 1) out[s.i]!.filled = s.lo
    })
    open = open.filter((s) => s.hi - s.lo > 1)
  }
}
