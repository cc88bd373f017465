import { ANY_USER, type Filter } from './filter.js'

/**
 * The matching engine's two tables: exact, keyed `<user|*><path>`, and wildcard, keyed
 * `<user|*><prefix>`. Both are hash maps nested under the user, one `UserIndex` per user (or
 * `*`), so an event costs two user lookups in all. Matching does only point lookups, so key
 * order would buy nothing.
 *
 * Invariant: the cost of `match` depends on the depth of the event's path and the number of
 * matches, never on the number of registered filters. An event looks up its exact path and,
 * for its user and for `*`, each `/`-boundary of its path ('', `/`, `/pub/`, ...).
 *
 * Prefixes may end mid-segment (`/pub/pubky.app/po`). Such a prefix is stored under its
 * last `/`-boundary (`/pub/pubky.app/`) with the remainder (`po`) as a second key; each
 * boundary bucket also keeps the distinct remainder lengths it holds. At a boundary the
 * event tries only those lengths, each one lookup of the next segment's first ℓ characters.
 * Remainders never contain `/` and segments are at most 255 bytes, so this is bounded by the
 * path, and in practice is one lookup (ℓ = 0). A character trie would be correct too but
 * would walk every character of every path, ~60 steps for a typical path instead of ~5.
 *
 * Subscribers are opaque to the tables (carry any data on them); private-event policy is
 * the caller's.
 */
export class SubscriptionTables<Sub> {
  #users = new Map<string, UserIndex<Sub>>()
  #filters = new Map<Sub, readonly Filter[]>()

  /** Registers `sub` under `filters`, replacing what it had. O(its filters). */
  add(sub: Sub, filters: readonly Filter[]): void {
    this.remove(sub)
    const unique = filters.length < 2 ? filters.slice() : [...new Map(filters.map((f) => [keyOf(f), f])).values()]
    for (const f of unique) {
      let index = this.#users.get(f.user)
      if (index === undefined) this.#users.set(f.user, (index = { exact: new Map(), wild: new Map() }))
      if (f.prefix) addWild(index.wild, f.path, sub)
      else addExact(index.exact, f.path, sub)
    }
    this.#filters.set(sub, unique)
  }

  remove(sub: Sub): boolean {
    const filters = this.#filters.get(sub)
    if (filters === undefined) return false
    for (const f of filters) {
      const index = this.#users.get(f.user)!
      if (f.prefix) removeWild(index.wild, f.path, sub)
      else removeExact(index.exact, f.path, sub)
      if (index.exact.size === 0 && index.wild.size === 0) this.#users.delete(f.user)
    }
    this.#filters.delete(sub)
    return true
  }

  has(sub: Sub): boolean {
    return this.#filters.has(sub)
  }

  filtersOf(sub: Sub): readonly Filter[] | undefined {
    return this.#filters.get(sub)
  }

  get size(): number {
    return this.#filters.size
  }

  /** Every subscriber with at least one matching filter, once: a fresh set, or a shared empty one. */
  match(ev: { user: string; path: string }): ReadonlySet<Sub> {
    const mine = this.#users.get(ev.user)
    const any = this.#users.get(ANY_USER)
    if (mine === undefined && any === undefined) return NONE as ReadonlySet<Sub>
    const path = ev.path
    let out = addAll(undefined, mine?.exact.get(path))
    out = addAll(out, any?.exact.get(path))
    const wild = mine !== undefined && mine.wild.size > 0 ? mine.wild : undefined
    const anyWild = any !== undefined && any.wild.size > 0 ? any.wild : undefined
    if (wild !== undefined || anyWild !== undefined) {
      for (let at = 0; ; ) {
        const next = path.indexOf('/', at)
        const end = next < 0 ? path.length : next
        // one slice per boundary, shared by both lookups
        const boundary = path.slice(0, at)
        if (wild !== undefined) out = addBucket(out, wild.get(boundary), path, at, end)
        if (anyWild !== undefined) out = addBucket(out, anyWild.get(boundary), path, at, end)
        if (next < 0) break
        at = next + 1
      }
    }
    return out ?? (NONE as ReadonlySet<Sub>)
  }
}

interface UserIndex<Sub> {
  exact: Map<string, Set<Sub>>
  /** boundary → bucket */
  wild: Map<string, Bucket<Sub>>
}

interface Bucket<Sub> {
  /** remainder after the boundary → subscribers */
  byRest: Map<string, Set<Sub>>
  /** how many remainders of each length */
  counts: Map<number, number>
  /** the distinct remainder lengths, ascending */
  lengths: number[]
}

const NONE: ReadonlySet<never> = new Set()

const keyOf = (f: Filter) => `${f.prefix ? '*' : '='}${f.user}${f.path}`

function addAll<T>(out: Set<T> | undefined, subs: Set<T> | undefined): Set<T> | undefined {
  if (subs === undefined) return out
  out ??= new Set()
  for (const s of subs) out.add(s)
  return out
}

/** The remainders held at one boundary that the segment `path[at, end)` starts with. */
function addBucket<T>(out: Set<T> | undefined, bucket: Bucket<T> | undefined, path: string, at: number, end: number) {
  if (bucket === undefined) return out
  for (const len of bucket.lengths) {
    if (len > end - at) break
    out = addAll(out, bucket.byRest.get(len === 0 ? '' : path.slice(at, at + len)))
  }
  return out
}

function addExact<Sub>(exact: Map<string, Set<Sub>>, path: string, sub: Sub): void {
  let subs = exact.get(path)
  if (subs === undefined) exact.set(path, (subs = new Set()))
  subs.add(sub)
}

function removeExact<Sub>(exact: Map<string, Set<Sub>>, path: string, sub: Sub): void {
  const subs = exact.get(path)
  if (subs !== undefined && subs.delete(sub) && subs.size === 0) exact.delete(path)
}

function splitPrefix(prefix: string): [boundary: string, rest: string] {
  const cut = prefix.lastIndexOf('/') + 1
  return [prefix.slice(0, cut), prefix.slice(cut)]
}

function addWild<Sub>(wild: Map<string, Bucket<Sub>>, prefix: string, sub: Sub): void {
  const [boundary, rest] = splitPrefix(prefix)
  let bucket = wild.get(boundary)
  if (bucket === undefined) wild.set(boundary, (bucket = { byRest: new Map(), counts: new Map(), lengths: [] }))
  let subs = bucket.byRest.get(rest)
  if (subs === undefined) {
    bucket.byRest.set(rest, (subs = new Set()))
    const n = bucket.counts.get(rest.length) ?? 0
    bucket.counts.set(rest.length, n + 1)
    if (n === 0) bucket.lengths = [...bucket.counts.keys()].sort((a, b) => a - b)
  }
  subs.add(sub)
}

function removeWild<Sub>(wild: Map<string, Bucket<Sub>>, prefix: string, sub: Sub): void {
  const [boundary, rest] = splitPrefix(prefix)
  const bucket = wild.get(boundary)
  const subs = bucket?.byRest.get(rest)
  if (bucket === undefined || subs === undefined || !subs.delete(sub) || subs.size > 0) return
  bucket.byRest.delete(rest)
  const n = bucket.counts.get(rest.length)! - 1
  if (n > 0) return void bucket.counts.set(rest.length, n)
  bucket.counts.delete(rest.length)
  bucket.lengths = bucket.lengths.filter((l) => l !== rest.length)
  if (bucket.byRest.size === 0) wild.delete(boundary)
}
