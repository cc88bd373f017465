import type { EventLog } from '../events/log.js'
import type { HearthEvent } from '../events/event.js'
import type { CommitTx, Store, UpstreamCursor } from '../kv/store.js'

/** An upstream event as the relay stores it, before it has a seq in the relay's log. */
export type OriginEvent = Omit<HearthEvent, 'seq'> & { homeserver: string; originSeq: number }

interface Item {
  upstream: string
  homeserver: string
  /** undefined: only move the cursor (an upstream reset, or a first contact) */
  event?: OriginEvent
  cursor: number
  done: () => void
  failed: (err: unknown) => void
}

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
  readonly #log: EventLog
  readonly #queue: Item[] = []
  readonly #observers = new Set<(group: { events: number; ms: number }) => void>()
  #running: Promise<void> | undefined
  /** when the current commit group started (`performance.now()`), for readiness */
  busySince: number | undefined

  constructor(store: Store, log: EventLog) {
    this.#store = store
    this.#log = log
  }

  /** Queues one upstream event; resolves once it is durable in the relay's log (or was already). */
  add(upstream: string, event: OriginEvent): Promise<void> {
    return this.#push(upstream, event.homeserver, event, event.originSeq)
  }

  /** Moves an upstream's stored cursor forward (never back), with no event. */
  moveCursor(cursor: UpstreamCursor): Promise<void> {
    return this.#push(cursor.upstream, cursor.homeserver, undefined, cursor.cursor)
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

  #push(upstream: string, homeserver: string, event: OriginEvent | undefined, cursor: number): Promise<void> {
    return new Promise((done, failed) => {
      this.#queue.push({ upstream, homeserver, event, cursor, done, failed })
      // the first item of a burst waits one turn, so the rest of the burst joins its group
      this.#running ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#drain())
    })
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const group = this.#queue.splice(0, GROUP)
        const started = (this.busySince = performance.now())
        try {
          const appended = await this.#store.commit((tx) => stage(tx, group))
          for (const observe of this.#observers) observe({ events: appended.length, ms: performance.now() - started })
          await this.#log.publish(appended)
          for (const item of group) item.done()
        } catch (err) {
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
async function stage(tx: CommitTx, group: readonly Item[]): Promise<HearthEvent[]> {
  const names = [...new Set(group.map((i) => i.upstream))]
  const stored = await tx.upstreamCursors(names)
  const cursors = new Map<string, UpstreamCursor>()
  names.forEach((upstream, i) => {
    const at = stored[i]
    if (at !== undefined) cursors.set(upstream, { ...at })
  })
  const appended: HearthEvent[] = []
  const moved = new Set<string>()
  for (const item of group) {
    const at = cursors.get(item.upstream)
    // an upstream is one homeserver for good: the key it first gave is the one it keeps
    if (at !== undefined && at.homeserver !== item.homeserver) continue
    if (at !== undefined && item.cursor <= at.cursor) continue
    if (item.event !== undefined) appended.push({ ...item.event, seq: tx.head + appended.length + 1 })
    cursors.set(item.upstream, { upstream: item.upstream, homeserver: item.homeserver, cursor: item.cursor })
    moved.add(item.upstream)
  }
  for (const upstream of moved) tx.setUpstreamCursor(cursors.get(upstream)!)
  tx.append(appended)
  return appended
}
