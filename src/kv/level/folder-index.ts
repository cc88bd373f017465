import { createHash } from 'node:crypto'

/**
 * The embedded engine's folder index, which answers "how many files lie below this folder"
 * for the clash check. Folders down to INDEXED_LEVELS below the root (`/pub/a` is level 1)
 * keep a stored count of every file below them; a deeper folder is answered by counting its
 * range of file keys, up to the cap asked.
 *
 * A count read is cheap and a range read costs about ten of them, so the levels where most
 * files live are counted; but every new or deleted file changes the count of each counted
 * folder above it, and counting all 63 folders of a 64-segment path made its commit cost
 * grow with its depth. With the bound, a file changes at most INDEXED_LEVELS counts, and a
 * deep folder's check costs one range read.
 */
export const INDEXED_LEVELS = 8

/** The index's layout; another value in the store's `meta` means it is rebuilt at open. */
export const FOLDER_INDEX = `sha1-total-${INDEXED_LEVELS}`

/** Whether `folder` keeps a stored count: it lies 1 to INDEXED_LEVELS below the root (`/pub/a` is 1). */
export function isCounted(folder: string): boolean {
  let slashes = 0
  for (let i = 0; i < folder.length && slashes <= INDEXED_LEVELS + 1; i++) if (folder.charCodeAt(i) === 47) slashes++
  return slashes >= 2 && slashes <= INDEXED_LEVELS + 1
}

/**
 * A short, fixed-length name for one user's folder: `<z32>` and 27 characters of its path's
 * SHA-1, so a counted folder's key stays small however long its path. Two folders whose paths
 * collide would share a count; the user key in front confines that to one user's own tree.
 */
export const folderKey = (user: string, folder: string): string => user + createHash('sha1').update(folder).digest('base64url')

/**
 * `folderKey` of each counted folder above the file at `path`, shallowest first. The path is
 * hashed once, each prefix's digest taken from a copy of the running hash; prefixes end
 * before a `/`, which never splits a character, so each digest is the one `folderKey` gives.
 */
export function countedAbove(user: string, path: string): string[] {
  const keys: string[] = []
  const hash = createHash('sha1')
  let from = 0
  // the first counted folder (`/pub/a` of `/pub/a/b`) ends at the path's third `/`
  let at = path.indexOf('/', path.indexOf('/', 1) + 1)
  while (at !== -1 && keys.length < INDEXED_LEVELS) {
    hash.update(path.slice(from, at))
    from = at
    keys.push(user + hash.copy().digest('base64url'))
    at = path.indexOf('/', at + 1)
  }
  return keys
}
