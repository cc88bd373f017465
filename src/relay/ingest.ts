import type { EventLog } from '../events/event-log.js'
import type { HearthEvent } from '../events/event.js'
import type { CommitTx, Store, UpstreamCursor } from '../kv/store.js'
import { CursorBook } from './cursor-book.js'
import { filterMatches } from '../subscriptions/filter.js'

/** An upstream event as the relay stores it, before it has a seq in the relay's log. */
export type OriginEvent = Omit<HearthEvent, 'seq'> & { homeserver: string; originSeq: number }

/**
 * One run of one upstream's follower. Its items commit in order or not at all: once one of
 * its groups fails, the rest of its items are refused, and the upstream starts a new attempt
 * from the stored cursor. (Committing later items after a failed group would move the cursor
 * past events that never landed.)
 */
export interface Attempt {
  upstream: string
  homeserver: string
  /** the cursors its events move: its upstream's one cursor, or a followed stream's filters' (see CursorBook) */
  cursors?: readonly string[]
  failed?: unknown
}

interface Item {
  attempt: Attempt
  /** undefined: only move the cursor (an upstream reset, scanned positions, a first contact) */
  event?: OriginEvent
  /** the operator's upstreams' cursors whose filters match the event (followed filters' are read in the commit) */
  covering: readonly string[]
  cursor: number
  /** a rewind: the cursor goes back to `cursor`, only if the stored one is still this */
  rewindFrom?: number
  /** true when this item took effect: its event appended, its cursor moved */
  done: (applied: boolean) => void
  failed: (err: unknown) => void
}

/** An upstream whose stored homeserver is another: its events do not belong to this log. */
export class HomeserverMismatch extends Error {}

/** Events per commit group: one transaction stays short, and one upstream cannot starve the rest for long. */
const GROUP = 2000

/**
 * The relay's one writer: events from every upstream, appended to the relay's own log in
 * arrival order, in groups, each group with the new cursor of every upstream it covers.
 *
 * Exactly once: inside the commit (which holds the commit lock, so it sees every earlier
 * commit of any process on the same database, and none lands until it ends) the stored
 * cursors that cover each event are read — every followed filter's cursor of the event's
 * user on its homeserver, found by name whichever process keeps it, and this process's
 * operator upstreams' (see CursorBook) — and only an event none of them has passed is
 * appended. So an event that comes twice — after a reconnect, a restart of the relay or of
 * the upstream loop, from a second relay process on the same database following the same
 * filter or another that matches it, or through a second stream — lands once, and each
 * stream's events land in its own order.
 */
export class RelayIngest {
  readonly #store: Store
  readonly #events: EventLog
  /** every cursor the relay keeps, and which of them match an event */
  readonly book: CursorBook
  readonly #queue: Item[] = []
  readonly #observers = new Set<(group: { events: number; ms: number }) => void>()
  #running: Promise<void> | undefined
  /** when the current commit group started (`performance.now()`), for readiness */
  busySince: number | undefined

  constructor(store: Store, events: EventLog, book = new CursorBook()) {
    this.#store = store
    this.#events = events
    this.book = book
  }

  /**
   * Queues one upstream event of `attempt`, which must come after the attempt's earlier ones;
   * resolves once it is durable in the relay's log: true if appended now, false if it was there.
   */
  add(attempt: Attempt, event: OriginEvent): Promise<boolean> {
    return this.#push(attempt, event, event.originSeq)
  }

  /** Moves the attempt's upstream's stored cursor forward (never back), with no event. */
  moveCursor(attempt: Attempt, cursor: number): Promise<boolean> {
    return this.#push(attempt, undefined, cursor)
  }

  /**
   * Sets the attempt's upstream's stored cursor back to 0, if it still stands at `from`: the
   * upstream's log no longer reaches it. Resolves true if it did. (A cursor moved since, by
   * this process or another on the same database, is left alone: that one rewind is enough.)
   */
  rewind(attempt: Attempt, from: number): Promise<boolean> {
    return this.#push(attempt, undefined, 0, from)
  }

  /**
   * The book takes where these followed filters' cursors stand in the Store now: another
   * process on the same database may have moved them, and a stream starts from there.
   */
  async reload(names: readonly string[]): Promise<void> {
    for (const c of await this.#store.upstreamCursors(names)) this.book.learn(c)
  }

  /** Tells `observer` of each commit group: how many events it appended, how long it took. */
  onCommit(observer: (group: { events: number; ms: number }) => void): () => void {
    this.#observers.add(observer)
    return () => this.#observers.delete(observer)
  }

  /** Resolves once everything queued so far was committed or refused. */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running
  }

  #push(attempt: Attempt, event: OriginEvent | undefined, cursor: number, rewindFrom?: number): Promise<boolean> {
    if (attempt.failed !== undefined) return Promise.reject(attempt.failed)
    const others = event === undefined ? [] : this.book.covering(attempt.homeserver, event)
    // an operator's upstream dropped what its filters do not match: its own cursor always covers its events
    const covering = attempt.cursors === undefined ? [attempt.upstream, ...others.filter((n) => n !== attempt.upstream)] : others
    return new Promise((done, failed) => {
      this.#queue.push({ attempt, event, covering, cursor, rewindFrom, done, failed })
      // the first item of a burst waits one turn, so the rest of the burst joins its group
      this.#running ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#drain())
    })
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const group = this.#queue.splice(0, GROUP).filter((item) => {
          if (item.attempt.failed === undefined) return true
          item.failed(item.attempt.failed)
          return false
        })
        if (group.length === 0) continue
        const started = (this.busySince = performance.now())
        try {
          // a store one process at a time: this book knows every followed cursor, and a user without one needs no read
          const mayHaveCursors = this.#store.supports.manyProcesses ? () => true : (homeserver: string, user: string) => this.book.follows(homeserver, user)
          const staged = await this.#store.commit((tx) => stage(tx, group, mayHaveCursors))
          for (const c of staged.read) this.book.learn(c)
          for (const c of staged.cursors) this.book.moved(c.upstream, c.cursor)
          for (const observe of this.#observers) observe({ events: staged.appended.length, ms: performance.now() - started })
          await this.#events.publish(staged.appended)
          for (const item of group) {
            if (staged.refused.has(item)) item.failed(new HomeserverMismatch(`${item.attempt.upstream} was ${item.attempt.homeserver}'s before; its events are refused`))
            else item.done(staged.applied.has(item))
          }
        } catch (err) {
          for (const item of group) item.attempt.failed ??= err
          for (const item of group) item.failed(err)
        } finally {
          this.busySince = undefined
        }
      }
    } finally {
      this.#running = undefined
    }
  }
}

/**
 * One group inside its transaction: skip what is stored already, number the rest, move the
 * cursors. An event is stored already when a cursor covering it (its filters match the event)
 * stands at its origin seq or beyond; a cursor moves only forward, except by a rewind.
 */
async function stage(tx: CommitTx, group: readonly Item[], mayHaveCursors: (homeserver: string, user: string) => boolean): Promise<{ appended: HearthEvent[]; applied: Set<Item>; refused: Set<Item>; cursors: UpstreamCursor[]; read: UpstreamCursor[] }> {
  const own = (item: Item) => item.attempt.cursors ?? [item.attempt.upstream]
  const names = [...new Set(group.flatMap((i) => [...own(i), ...i.covering]))]
  const prefix = (item: Item & { event: OriginEvent }) => CursorBook.userPrefix(item.attempt.homeserver, item.event.user)
  const withEvents = group.filter((i): i is Item & { event: OriginEvent } => i.event !== undefined && mayHaveCursors(i.attempt.homeserver, i.event.user))
  const prefixes = [...new Set(withEvents.map(prefix))]
  const [stored, followed] = await Promise.all([tx.upstreamCursors(names), tx.upstreamCursorsUnder(prefixes)])
  const cursors = new Map<string, UpstreamCursor>()
  names.forEach((upstream, i) => {
    const at = stored[i]
    if (at !== undefined) cursors.set(upstream, { ...at })
  })
  // each user's followed filters on the homeserver, whichever process keeps their cursors, and
  // those this group moves for the first time (not stored yet, they may cover its later items)
  const read = followed.flat()
  for (const c of read) if (!cursors.has(c.upstream)) cursors.set(c.upstream, { ...c })
  const filtersOf = new Map(prefixes.map((p, i) => {
    const mine = new Set([...followed[i]!.map((c) => c.upstream), ...names.filter((n) => n.startsWith(p))])
    return [p, [...mine].flatMap((name) => {
      const filter = CursorBook.filterOf(name)
      return filter === undefined ? [] : [{ name, filter }]
    })]
  }))
  const covering = (item: Item & { event: OriginEvent }) => [
    ...item.covering,
    ...(filtersOf.get(prefix(item)) ?? []).filter((f) => filterMatches(f.filter, item.event)).map((f) => f.name),
  ]
  const at = (name: string) => cursors.get(name)?.cursor ?? -1
  const appended: HearthEvent[] = []
  const applied = new Set<Item>()
  const refused = new Set<Item>()
  const moved = new Set<string>()
  for (const item of group) {
    const { homeserver } = item.attempt
    const mine = own(item)
    // an upstream is one homeserver for good: the key it first gave is the one it keeps
    if (mine.some((n) => cursors.has(n) && cursors.get(n)!.homeserver !== homeserver)) {
      refused.add(item)
      continue
    }
    if (item.rewindFrom !== undefined) {
      if (at(mine[0]!) !== item.rewindFrom) continue
    } else if (item.event !== undefined) {
      if (covering(item as Item & { event: OriginEvent }).some((n) => at(n) >= item.cursor)) continue
    } else if (mine.every((n) => at(n) >= item.cursor)) {
      continue
    }
    if (item.event !== undefined) appended.push({ ...item.event, seq: tx.head + appended.length + 1 })
    applied.add(item)
    for (const upstream of mine) {
      if (item.rewindFrom === undefined && at(upstream) >= item.cursor) continue
      cursors.set(upstream, { upstream, homeserver, cursor: item.cursor })
      moved.add(upstream)
    }
  }
  const out = [...moved].map((upstream) => cursors.get(upstream)!)
  for (const c of out) tx.setUpstreamCursor(c)
  tx.append(appended)
  return { appended, applied, refused, cursors: out, read }
}
