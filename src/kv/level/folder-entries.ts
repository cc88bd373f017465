import type { FolderChain } from '../store.js'

/**
 * The embedded engine's folder index: for each folder that exists, how many entries it holds
 * directly — files, and folders that themselves exist. A folder exists while something lies
 * below it, so an entry count is never 0 on disk: a folder that empties is deleted, and its
 * parent loses that entry.
 *
 * Direct entries, not every file below, so that a new file in an existing folder changes one
 * count, whatever its depth: a count of all files below would change at every folder above it.
 * A new file changes one count per folder it creates, plus one; a deletion, one per folder it
 * empties, plus one.
 */

/**
 * A folder's entry count as the caller sees it, given its key and its index in the chain's
 * `above`; undefined while unknown (not yet read).
 */
export type EntryCount = (key: string, index: number) => number | undefined

/**
 * Adds (`by` = +1) or removes (-1) the entry of one file to the folders above it, walking up
 * while a folder appears or disappears. `set` receives each new count. Returns the key of the
 * first folder whose count the walk needs and `countOf` does not know; nothing is set then,
 * so the caller can read it and walk again.
 */
export function changeEntries(chain: FolderChain, by: 1 | -1, countOf: EntryCount, set: (key: string, n: number) => void): string | undefined {
  const changes: [string, number][] = []
  for (let i = chain.above.length - 1; i >= 0; i--) {
    const key = chain.above[i]!
    const n = countOf(key, i)
    if (n === undefined) return key
    changes.push([key, n + by])
    // a folder that had entries before, and has some after, hides the change from its parent
    if (n > 0 && n + by > 0) break
  }
  for (const [key, n] of changes) set(key, n)
  return undefined
}
