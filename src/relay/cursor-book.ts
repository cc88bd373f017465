import { setOf } from '../shared/set-of.js'
import type { UpstreamCursor } from '../kv/store.js'
import { filterMatches, parseFilter, type Filter } from '../subscriptions/filter.js'

/**
 * One cursor the relay keeps on a homeserver: how far it has read that homeserver's log for
 * `filters`. An upstream given by the operator has one cursor for its `--filter`s; a followed
 * user's filter has one of its own, named `<homeserver>|<filter>`, so a filter added later
 * reads that user's history from the start however far another filter of the same user got.
 */
export interface CursorEntry {
  readonly name: string
  readonly homeserver: string
  readonly filters: readonly Filter[]
  /** the last origin seq committed for it (0: none yet) */
  cursor: number
}

/** The separator of a followed filter's cursor name: never in a URL's origin or a key. */
const SEP = '|'

/**
 * Every cursor the relay keeps, by homeserver and user, in memory: loaded from the Store at
 * start and kept up to date after each commit. Exactly once rests on one question: which
 * cursors' filters match this event? An event from homeserver H at origin seq s is in the
 * relay's log already exactly when one of those cursors stands at s or beyond (its filters
 * match the event, and it read H's log past s). A followed filter's cursor names its filter,
 * so the ingest finds those of the event's user inside its commit, by name (`userPrefix`),
 * whichever process keeps them; an operator's upstream's cursor does not, and this book
 * answers for those (`covering`).
 */
export class CursorBook {
  readonly #byName = new Map<string, CursorEntry>()
  /** homeserver → the operator's upstreams' cursors */
  readonly #sources = new Map<string, Set<CursorEntry>>()
  /** homeserver → user → that user's followed filters' cursors */
  readonly #byUser = new Map<string, Map<string, Set<CursorEntry>>>()

  static filterCursorName(homeserver: string, filter: Filter): string {
    return `${homeserver}${SEP}${filter.text}`
  }

  /** Whether a stored cursor is a followed filter's (else an operator's upstream's). */
  static isFilterCursor(name: string): boolean {
    return name.includes(SEP)
  }

  /** What the names of `user`'s followed filters' cursors on `homeserver` begin with (a key ends it: a letter or digit). */
  static userPrefix(homeserver: string, user: string): string {
    return `${homeserver}${SEP}${user}`
  }

  /** The filter a followed filter's cursor is named after; undefined for any other name, or a filter this code does not read (a later version's). */
  static filterOf(name: string): Filter | undefined {
    const sep = name.indexOf(SEP)
    if (sep === -1) return undefined
    try {
      return parseFilter(name.slice(sep + 1))
    } catch {
      return undefined
    }
  }

  /** Loads what the Store holds; `sourceFilters` are the filters an operator's upstream follows. */
  load(stored: readonly UpstreamCursor[], sourceFilters: readonly Filter[]): void {
    for (const c of stored) {
      if (!CursorBook.isFilterCursor(c.upstream)) this.#add(c.upstream, c.homeserver, sourceFilters, c.cursor)
      else this.learn(c)
    }
  }

  /**
   * A followed filter's cursor as the Store held it (this process's or another's, on the same
   * database; such a cursor never goes back): the book takes it where it stood, if that is
   * further. A filter this code does not read covers nothing here.
   */
  learn(c: UpstreamCursor): void {
    const known = this.#byName.get(c.upstream)
    if (known !== undefined) return void (known.cursor = Math.max(known.cursor, c.cursor))
    const filter = CursorBook.filterOf(c.upstream)
    if (filter !== undefined) this.#add(c.upstream, c.homeserver, [filter], c.cursor)
  }

  /** An operator's upstream, once its homeserver is proven. */
  addSource(name: string, homeserver: string, filters: readonly Filter[]): CursorEntry {
    return this.#byName.get(name) ?? this.#add(name, homeserver, filters, 0)
  }

  /** A followed user's filter on a homeserver: its cursor, new at 0 or as stored. */
  filterCursor(homeserver: string, filter: Filter): CursorEntry {
    const name = CursorBook.filterCursorName(homeserver, filter)
    return this.#byName.get(name) ?? this.#add(name, homeserver, [filter], 0)
  }

  get(name: string): CursorEntry | undefined {
    return this.#byName.get(name)
  }

  get size(): number {
    return this.#byName.size
  }

  /** The names of the operator's upstreams' cursors on `homeserver` whose filters match `ev` (followed filters' are found in the commit). */
  covering(homeserver: string, ev: { user: string; path: string }): string[] {
    return [...this.#sources.get(homeserver) ?? []].filter((e) => e.filters.some((f) => filterMatches(f, ev))).map((e) => e.name)
  }

  /** Whether this book holds a followed filter's cursor of `user` on `homeserver`. */
  follows(homeserver: string, user: string): boolean {
    return this.#byUser.get(homeserver)?.has(user) === true
  }

  /** The homeservers `user` has followed filters' cursors on. */
  homeserversOf(user: string): string[] {
    return [...this.#byUser].filter(([, users]) => users.has(user)).map(([homeserver]) => homeserver)
  }

  /** After a commit: where the cursor now stands. */
  moved(name: string, cursor: number): void {
    const e = this.#byName.get(name)
    if (e !== undefined) e.cursor = cursor
  }

  #add(name: string, homeserver: string, filters: readonly Filter[], cursor: number): CursorEntry {
    const entry: CursorEntry = { name, homeserver, filters, cursor }
    this.#byName.set(name, entry)
    if (!CursorBook.isFilterCursor(name)) {
      setOf(this.#sources, homeserver).add(entry)
    } else {
      const byUser = this.#byUser.get(homeserver) ?? new Map<string, Set<CursorEntry>>()
      this.#byUser.set(homeserver, byUser)
      setOf(byUser, filters[0]!.user).add(entry)
    }
    return entry
  }
}
