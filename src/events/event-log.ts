import type { LogRead, ReadView, Store } from '../kv/store.js'
import { Serial } from '../serial.js'
import { backoffDelay, type Backoff } from 'hearth-homeserver-client/backoff'
import type { HearthEvent } from './event.js'

export type AppendListener = (events: readonly HearthEvent[]) => void

/** Events read per page when catching up with commits made by other processes. */
const CATCH_UP_PAGE = 1000
/**
 * How often an engine shared by many processes has its floor re-read for `/info` and metrics,
 * also when this process takes no writes. Feeds never trust this copy: each read of the log
 * brings the floor of its own snapshot (Store.readLog).
 */
const FLOOR_REFRESH_MS = 1000
/** Re-reads of commits made elsewhere, while the storage does not answer: 50 ms doubling to 2 s. */
const PUBLISH_RETRY: Backoff = { baseMs: 50, maxMs: 2000, jitter: 0 }

/**
 * The read side of the event log, and the one place that announces new events.
 *
 * Invariant: `head` is the highest seq that is both committed and announced in this
 * process, and every seq up to it was announced in order. Readers never return events
 * above `head`, even when storage already holds them: an event becomes visible to replays in
 * the same tick in which it is pushed to live subscribers, which is what lets a subscriber
 * switch from replay to live without a gap or a repeat.
 *
 * Events reach `announce` from two sides, one at a time through `#order`: this process's
 * own commits (`publish`), and commits of other processes sharing the storage (the store's
 * `watch`). Commit order is seq order, so when an own commit skips seqs, the commits in
 * between are already stored, and are read and announced first.
 */
export class EventLog {
  readonly #store: Store
  readonly #listeners = new Set<AppendListener>()
  readonly #order = new Serial()
  #head = 0
  #floor = 1
  #unwatch: () => void = () => {}
  #floorTimer: NodeJS.Timeout | undefined
  #closed = false

  private constructor(store: Store) {
    this.#store = store
  }

  static async open(store: Store): Promise<EventLog> {
    const log = new EventLog(store)
    log.#head = await store.head()
    log.#floor = await store.floor()
    log.#unwatch = store.watch((head) => void log.catchUp(head).catch(() => {}))
    if (store.supports.manyProcesses) {
      log.#floorTimer = setInterval(() => void store.floor().then((f) => log.#learnFloor(f), () => {}), FLOOR_REFRESH_MS)
      log.#floorTimer.unref()
    }
    return log
  }

  get head(): number {
    return this.#head
  }

  /**
   * The oldest retained seq as this process last learned it (from its own pruning, from reads,
   * and from a periodic re-read where other processes may prune): for display and for skipping
   * ahead. It may lag the stored floor, never lead it; a reader that must not skip an event
   * unawares checks the floor its read brought (`LogRead.floor`), not this.
   */
  get floor(): number {
    return this.#floor
  }

  close(): void {
    this.#closed = true
    this.#unwatch()
    clearInterval(this.#floorTimer)
  }

  #learnFloor(floor: number): void {
    if (floor > this.#floor) this.#floor = floor
  }

  onAppend(listener: AppendListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /**
   * Called by the writer once its group is committed: announces it, in seq order. Commits of
   * other processes before it are read first; a read that fails (the database went away just
   * after the commit) is tried again until it answers or the log closes, because committed
   * events must be announced, in order, before anything after them: the writer acknowledges
   * its group only then.
   */
  publish(events: readonly HearthEvent[]): Promise<void> {
    return this.#order.run(async () => {
      if (events.length === 0) return
      for (let attempt = 0; events[0]!.seq > this.#head + 1; attempt++) {
        try {
          await this.#announceStored(events[0]!.seq - 1)
        } catch (err) {
          if (this.#closed) throw err
          await new Promise((r) => setTimeout(r, backoffDelay(PUBLISH_RETRY, attempt)))
        }
      }
      this.#announce(events.filter((ev) => ev.seq > this.#head))
    })
  }

  /** Announces commits made elsewhere, up to `head` (or the stored head when not given). */
  catchUp(head?: number): Promise<void> {
    return this.#order.run(async () => {
      await this.#announceStored(head ?? (await this.#store.head()))
    })
  }

  async #announceStored(upTo: number): Promise<void> {
    while (this.#head < upTo) {
      const { events, floor } = await this.#store.readLog(this.#head, upTo, CATCH_UP_PAGE)
      this.#learnFloor(floor)
      // nothing stored after our head: pruned away meanwhile; the floor says so to readers
      if (events.length === 0) this.#head = upTo
      this.#announce(events)
    }
  }

  #announce(events: readonly HearthEvent[]): void {
    if (events.length === 0) return
    this.#head = events[events.length - 1]!.seq
    for (const listener of this.#listeners) listener(events)
  }

  /**
   * Events with seq > after, oldest first, at most `limit`, never above head, with the floor
   * of the same snapshot.
   */
  async read(after: number, limit: number): Promise<LogRead> {
    const page = await this.#store.readLog(after, this.#head, limit)
    this.#learnFloor(page.floor)
    return page
  }

  /** Newest first: events with seq < before. */
  readReverse(before: number, limit: number): Promise<HearthEvent[]> {
    return this.#store.readLogReverse(Math.min(before, this.#head + 1), limit)
  }

  /** One user's events with seq > after (only those under `under` when given), from the per-user index. */
  async readUser(user: string, after: number, limit: number, under?: string): Promise<LogRead> {
    const page = await this.#store.readUserLog(user, after, this.#head, limit, under)
    this.#learnFloor(page.floor)
    return page
  }

  readUserReverse(user: string, before: number, limit: number, under?: string): Promise<HearthEvent[]> {
    return this.#store.readUserLogReverse(user, Math.min(before, this.#head + 1), limit, under)
  }

  /** A view of one committed state of storage (the log's bounds, the files): see `Store.readView`. */
  readView(): Promise<ReadView> {
    return this.#store.readView()
  }

  /**
   * Drops events below `newFloor` in chunks, so retention never holds up writes for long.
   * The floor moves first: a reader that races the deletion sees a reset, not a hole.
   */
  async prune(newFloor: number, chunk = 1000): Promise<number> {
    newFloor = Math.min(newFloor, this.#head + 1)
    if (newFloor <= this.#floor) return 0
    this.#learnFloor(await this.#store.raiseFloor(newFloor))
    let removed = 0
    for (;;) {
      const n = await this.#store.pruneBelowFloor(chunk)
      if (n === 0) return removed
      removed += n
    }
  }
}
