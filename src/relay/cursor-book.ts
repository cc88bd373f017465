import { setOf } from '../shared/set-of.js'
import type { UpstreamCursor } from '../kv/store.js'
import { ANY_USER, filterMatches, parseFilter, type Filter } from '../subscriptions/filter.js'

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
 * start and kept up to date after each commit. It answers the one question exactly once rests
 * on: which cursors' filters match this event? An event from homeserver H at origin seq s is
 * in the relay's log already exactly when one of those cursors stands at s or beyond (its
 * filters match the event, and it read H's log past s), so the ingest reads those cursors
 * inside its commit and appends the event only if none has.
 */
export class CursorBook {
  readonly #byName = new Map<string, CursorEntry>()
  /** homeserver → cursors whose filters may name any user (an operator's upstream) */
  readonly #anyUser = new Map<string, Set<CursorEntry>>()
  /** homeserver → user → that user's followed filters' cursors */
  readonly #byUser = new Map<string, Map<string, Set<CursorEntry>>>()

  static filterCursorName(homeserver: string, filter: Filter): string {
    return `${homeserver}${SEP}${filter.text}`
  }

  /** Whether a stored cursor is a followed filter's (else an operator's upstream's). */
  static isFilterCursor(name: string): boolean {
    return name.includes(SEP)
  }

  /** Loads what the Store holds; `sourceFilters` are the filters an operator's upstream follows. */
  load(stored: readonly UpstreamCursor[], sourceFilters: readonly Filter[]): void {
    for (const c of stored) {
      const sep = c.upstream.indexOf(SEP)
      if (sep === -1) {
        this.#add(c.upstream, c.homeserver, sourceFilters, c.cursor)
        continue
      }
      let filter: Filter
      try {
        filter = parseFilter(c.upstream.slice(sep + 1))
      } catch {
        continue // not a filter this code reads (a later version's): it covers nothing here
      }
      this.#add(c.upstream, c.homeserver, [filter], c.cursor)
    }
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

  /** The names of every cursor on `homeserver` whose filters match `ev`. */
  covering(homeserver: string, ev: { user: string; path: string }): string[] {
    const out: string[] = []
    const consider = (entries: Set<CursorEntry> | undefined) => {
      for (const e of entries ?? []) if (e.filters.some((f) => filterMatches(f, ev))) out.push(e.name)
    }
    consider(this.#anyUser.get(homeserver))
    consider(this.#byUser.get(homeserver)?.get(ev.user))
    return out
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
    const users = new Set(filters.map((f) => f.user))
    if (users.has(ANY_USER) || users.size !== 1) {
      setOf(this.#anyUser, homeserver).add(entry)
    } else {
      const byUser = this.#byUser.get(homeserver) ?? new Map<string, Set<CursorEntry>>()
      this.#byUser.set(homeserver, byUser)
      setOf(byUser, [...users][0]!).add(entry)
    }
    return entry
  }
}
