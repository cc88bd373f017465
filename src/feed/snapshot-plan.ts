import { PUBLIC_ROOT } from '../paths.js'
import { USER_KEY_LENGTH, fileKey, keyOrder, type KeyRange, type ReadView } from '../kv/store.js'
import { ANY_USER, type Filter } from '../subscriptions/filter.js'

/** Users read per step when a filter names every user. */
const USERS_PER_READ = 256

/** One filter as a part of the file key space: `path` exactly, or every path starting with it. */
interface Part {
  path: string
  prefix: boolean
}

/**
 * What a snapshot reads: the file keys its filters cover, as ranges in key order, so its
 * files come out in key order, each once, whatever the filters overlap. A filter of one user is
 * one range (or one key) of that user's files; a filter of every user (`*`) is that range in
 * each user's files, found by reading the users: its cost follows the number of users plus the
 * files that match, never the files that do not. A stream that may see nothing private reads
 * only under `/pub/`, so which ranges it reads, and so what it writes, does not depend on
 * private files.
 */
export class SnapshotPlan {
  readonly #named = new Map<string, Part[]>()
  readonly #everyone: Part[] = []

  constructor(filters: readonly Filter[], publicOnly: boolean) {
    for (const f of filters) {
      const part = publicOnly ? publicPart(f) : { path: f.path, prefix: f.prefix }
      if (part === undefined) continue
      if (f.user === ANY_USER) this.#everyone.push(part)
      else this.#named.set(f.user, [...(this.#named.get(f.user) ?? []), part])
    }
  }

  /** The ranges after file key `after` (all when undefined), in key order, from `view`'s users. */
  async *ranges(view: ReadView, after?: string): AsyncGenerator<KeyRange> {
    for await (const user of this.#users(view, after?.slice(0, USER_KEY_LENGTH))) {
      for (const part of collapse([...this.#everyone, ...(this.#named.get(user) ?? [])])) {
        const range = keyRange(user, part)
        if (after === undefined) yield range
        else {
          const trimmed = trimAfter(range, after)
          if (trimmed !== undefined) yield trimmed
        }
      }
    }
  }

  async *#users(view: ReadView, from: string | undefined): AsyncGenerator<string> {
    if (this.#everyone.length === 0) {
      for (const user of [...this.#named.keys()].sort()) if (from === undefined || user >= from) yield user
      return
    }
    // from the user `after` lies in, whose other files come first: `users` reads after a key,
    // and no user's key (all are 52 characters) lies between `from` and the one before it
    let last = from === undefined ? undefined : from.slice(0, -1) + String.fromCharCode(from.charCodeAt(from.length - 1) - 1)
    for (;;) {
      const users = await view.users(last, USERS_PER_READ)
      yield* users
      if (users.length < USERS_PER_READ) return
      last = users[users.length - 1]
    }
  }
}

/** A filter's part that lies under `/pub/`, or nothing when it names only what is private. */
function publicPart(f: Filter): Part | undefined {
  if (f.path.startsWith(PUBLIC_ROOT)) return { path: f.path, prefix: f.prefix }
  if (f.prefix && PUBLIC_ROOT.startsWith(f.path)) return { path: PUBLIC_ROOT, prefix: true }
  return undefined
}

/** The parts sorted, each dropped that an earlier prefix covers: disjoint, in key order. */
function collapse(parts: Part[]): Part[] {
  const sorted = [...parts].sort((a, b) => (a.path === b.path ? Number(b.prefix) - Number(a.prefix) : keyOrder(a.path, b.path)))
  const out: Part[] = []
  for (const p of sorted) {
    const last = out[out.length - 1]
    if (last !== undefined && last.prefix && p.path.startsWith(last.path)) continue
    if (last !== undefined && !last.prefix && !p.prefix && last.path === p.path) continue
    out.push(p)
  }
  // an exact key that a later prefix covers comes before that prefix's range: drop it too
  return out.filter((p, i) => p.prefix || !out.slice(i + 1).some((q) => q.prefix && p.path.startsWith(q.path)))
}

function keyRange(user: string, part: Part): KeyRange {
  const start = fileKey(user, part.path)
  return part.prefix ? { gte: start, lt: prefixEnd(start) } : { gte: start, lte: start }
}

/** The part of `range` after `key`, if any. */
function trimAfter(range: KeyRange, key: string): KeyRange | undefined {
  const end = range.lt ?? range.lte!
  if (keyOrder(end, key) < 0 || (range.lte !== undefined && end === key)) return undefined
  if (keyOrder(range.gte!, key) > 0) return range
  return { gt: key, ...(range.lt !== undefined ? { lt: range.lt } : { lte: range.lte }) }
}

/** The first string after every string that starts with `prefix`, in byte (code point) order. */
export function prefixEnd(prefix: string): string {
  const points = [...prefix]
  while (points.length > 0) {
    let next = points.pop()!.codePointAt(0)! + 1
    if (next === 0xd800) next = 0xe000 // no key holds a surrogate
    if (next <= 0x10ffff) return points.join('') + String.fromCodePoint(next)
  }
  throw new RangeError('no key range ends after the empty prefix')
}
