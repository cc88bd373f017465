import type { Store } from '../kv/store.js'
import { Serial } from '../serial.js'
import type { HearthEvent } from './event.js'

export type AppendListener = (events: readonly HearthEvent[]) => void

/** Events read per page when catching up with commits made by other processes. */
const CATCH_UP_PAGE = 1000
/** How often the floor is re-read from storage, where another process may prune. */
const FLOOR_REFRESH_MS = 500

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
  #floorReadAt = 0
  #unwatch: () => void = () => {}

  private constructor(store: Store) {
    this.#store = store
  }

  static async open(store: Store): Promise<EventLog> {
    const log = new EventLog(store)
    log.#head = await store.head()
    log.#floor = await store.floor()
    log.#floorReadAt = Date.now()
    log.#unwatch = store.watch((head) => void log.catchUp(head).catch(() => {}))
    return log
  }

  get head(): number {
    return this.#head
  }

  /** The oldest retained seq; events below it were pruned. */
  get floor(): number {
    return this.#floor
  }

  close(): void {
    this.#unwatch()
  }

  onAppend(listener: AppendListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Called by the writer once its group is committed: announces it, in seq order. */
  publish(events: readonly HearthEvent[]): Promise<void> {
    return this.#order.run(async () => {
      if (events.length === 0) return
      if (events[0]!.seq > this.#head + 1) await this.#announceStored(events[0]!.seq - 1)
      this.#announce(events.filter((ev) => ev.seq > this.#head))
    })
  }

  /** Announces commits made elsewhere, up to `head` (or the stored head when not given). */
  catchUp(head?: number): Promise<void> {
    return this.#order.run(async () => {
      if (Date.now() - this.#floorReadAt >= FLOOR_REFRESH_MS) {
        this.#floorReadAt = Date.now()
        this.#floor = Math.max(this.#floor, await this.#store.floor())
      }
      await this.#announceStored(head ?? (await this.#store.head()))
    })
  }

  async #announceStored(upTo: number): Promise<void> {
    while (this.#head < upTo) {
      const page = await this.#store.readLog(this.#head, upTo, CATCH_UP_PAGE)
      // nothing stored after our head: pruned away meanwhile; the floor says so to readers
      if (page.length === 0) this.#head = upTo
      this.#announce(page)
    }
  }

  #announce(events: readonly HearthEvent[]): void {
    if (events.length === 0) return
    this.#head = events[events.length - 1]!.seq
    for (const listener of this.#listeners) listener(events)
  }

  /** Events with seq > after, oldest first, at most `limit`, never above head. */
  read(after: number, limit: number): Promise<HearthEvent[]> {
    return this.#store.readLog(after, this.#head, limit)
  }

  /** Newest first: events with seq < before. */
  readReverse(before: number, limit: number): Promise<HearthEvent[]> {
    return this.#store.readLogReverse(Math.min(before, this.#head + 1), limit)
  }

  /** One user's events with seq > after, from the per-user index. */
  readUser(user: string, after: number, limit: number): Promise<HearthEvent[]> {
    return this.#store.readUserLog(user, after, this.#head, limit)
  }

  readUserReverse(user: string, before: number, limit: number): Promise<HearthEvent[]> {
    return this.#store.readUserLogReverse(user, Math.min(before, this.#head + 1), limit)
  }

  /**
   * Drops events below `newFloor` in chunks, so retention never holds up writes for long.
   * The floor moves first: a reader that races the deletion sees a reset, not a hole.
   */
  async prune(newFloor: number, chunk = 1000): Promise<number> {
    newFloor = Math.min(newFloor, this.#head + 1)
    if (newFloor <= this.#floor) return 0
    this.#floor = Math.max(this.#floor, await this.#store.raiseFloor(newFloor))
    let removed = 0
    for (;;) {
      const n = await this.#store.pruneBelowFloor(chunk)
      if (n === 0) return removed
      removed += n
    }
  }
}
