import type { EventLog } from '../events/event-log.js'
import type { HearthEvent } from '../events/event.js'
import type { CommitTx, Store, UpstreamCursor } from '../kv/store.js'

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
  failed?: unknown
}

interface Item {
  attempt: Attempt
  /** undefined: only move the cursor (an upstream reset, scanned positions, a first contact) */
  event?: OriginEvent
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
 * Exactly once: inside the commit (which sees every earlier commit, on any instance) each
 * upstream's stored cursor is read, and only events beyond it are appended. So an event that
 * comes twice — after a reconnect, a restart of the relay or of the upstream loop, or from a
 * second relay process on the same database — lands once, and each upstream's events land in
 * its own order.
 */
export class RelayIngest {
  readonly #store: Store
  readonly #events: EventLog
  readonly #queue: Item[] = []
  readonly #observers = new Set<(group: { events: number; ms: number }) => void>()
  #running: Promise<void> | undefined
  /** when the current commit group started (`performance.now()`), for readiness */
  busySince: number | undefined

  constructor(store: Store, events: EventLog) {
    this.#store = store
    this.#events = events
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
    return new Promise((done, failed) => {
      this.#queue.push({ attempt, event, cursor, rewindFrom, done, failed })
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
          const staged = await this.#store.commit((tx) => stage(tx, group))
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

/** One group inside its transaction: skip what is stored already, number the rest, move the cursors. */
async function stage(tx: CommitTx, group: readonly Item[]): Promise<{ appended: HearthEvent[]; applied: Set<Item>; refused: Set<Item> }> {
  const names = [...new Set(group.map((i) => i.attempt.upstream))]
  const stored = await tx.upstreamCursors(names)
  const cursors = new Map<string, UpstreamCursor>()
  names.forEach((upstream, i) => {
    const at = stored[i]
    if (at !== undefined) cursors.set(upstream, { ...at })
  })
  const appended: HearthEvent[] = []
  const applied = new Set<Item>()
  const refused = new Set<Item>()
  const moved = new Set<string>()
  for (const item of group) {
    const { upstream, homeserver } = item.attempt
    const at = cursors.get(upstream)
    // an upstream is one homeserver for good: the key it first gave is the one it keeps
    if (at !== undefined && at.homeserver !== homeserver) {
      refused.add(item)
      continue
    }
    if (item.rewindFrom !== undefined ? at?.cursor !== item.rewindFrom : at !== undefined && item.cursor <= at.cursor) continue
    if (item.event !== undefined) appended.push({ ...item.event, seq: tx.head + appended.length + 1 })
    applied.add(item)
    cursors.set(upstream, { upstream, homeserver, cursor: item.cursor })
    moved.add(upstream)
  }
  for (const upstream of moved) tx.setUpstreamCursor(cursors.get(upstream)!)
  tx.append(appended)
  return { appended, applied, refused }
}
