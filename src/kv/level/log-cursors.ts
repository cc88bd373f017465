import type { HearthEvent } from '../../events/event.js'
import { decodeStored } from '../../events/stored.js'
import type { LogRead } from '../store.js'
import { PAGE_READ_BYTES, type LevelKV, type ViewPages } from './level-map.js'
import { asText, type Snapshot } from './ordered-map.js'

/** Cursors kept open between reads. */
const KEPT = 4

/**
 * How long a cursor serves reads after it was opened: its snapshot holds back LevelDB's
 * compactions and the deletion of the tables they replace.
 */
const SERVES_MS = 1000

/** The key of `seq` in the `log` namespace: hex, 16 digits, so keys sort as seqs do. */
export const seqKey = (seq: number): string => seq.toString(16).padStart(16, '0')

/** One snapshot of the log, its bounds, and one iterator over it moved from page to page. */
interface Cursor {
  snapshot: Snapshot
  pages: ViewPages
  head: number
  floor: number
  opened: number
  /** the floor raises before it was opened */
  raises: number
}

/**
 * Pages of the log read through a few iterators that stay open between reads, each over its own
 * snapshot. An iterator per page cost more than the page: LevelDB builds a merging iterator
 * over every table, and a closed classic-level iterator keeps its last native read (up to
 * PAGE_READ_BYTES) until V8 collects its handle, which a replay of a million events let grow by
 * 500 MB. A cursor serves a read only when its snapshot holds every event the read may return
 * (its head is at or past them) and the floor was not raised since it was opened, so the page
 * is the one a snapshot taken now would give. A page after the last one a cursor read goes on
 * without a seek.
 */
export class LogCursors {
  readonly #kv: LevelKV
  readonly #idle: Cursor[] = []
  #sweep: NodeJS.Timeout | undefined
  #closed = false
  #raises = 0

  constructor(kv: LevelKV) {
    this.#kv = kv
  }

  /** The floor and the events of (after, upTo] at or above it, at most `limit`, from one snapshot. */
  async read(after: number, upTo: number, limit: number): Promise<LogRead> {
    if (this.#closed) throw new Error('log read after close')
    const cursor = this.#take(Math.min(upTo, after + limit)) ?? (await this.#open())
    try {
      const from = Math.max(after + 1, cursor.floor)
      const found = from > upTo || limit === 0 ? [] : await cursor.pages.page({ gt: seqKey(from - 1), lte: seqKey(upTo) }, limit)
      const events: HearthEvent[] = []
      for (const [, value] of found) events.push(decodeStored(asText(value)!))
      return { events, floor: cursor.floor }
    } finally {
      this.#giveBack(cursor)
    }
  }

  /**
   * The floor was raised: no cursor opened before serves another read, so a read that starts
   * after the raise finds it, as a snapshot taken then would.
   */
  floorRaised(): void {
    this.#raises++
    for (const cursor of this.#idle.splice(0)) void close(cursor)
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#sweep)
    await Promise.all(this.#idle.splice(0).map((c) => close(c)))
  }

  /** An idle cursor whose snapshot holds every event up to `needs`, not past its time. */
  #take(needs: number): Cursor | undefined {
    const now = performance.now()
    const i = this.#idle.findIndex((c) => c.head >= needs && now - c.opened < SERVES_MS)
    return i < 0 ? undefined : this.#idle.splice(i, 1)[0]
  }

  async #open(): Promise<Cursor> {
    const raises = this.#raises
    const snapshot = this.#kv.snapshot()
    try {
      const head = Number(asText(await this.#kv.get('meta', 'head', { snapshot })) ?? 0)
      const floor = Number(asText(await this.#kv.get('meta', 'floor', { snapshot })) ?? 1)
      return { snapshot, pages: this.#kv.viewPages('log', snapshot, PAGE_READ_BYTES), head, floor, opened: performance.now(), raises }
    } catch (err) {
      await snapshot.close()
      throw err
    }
  }

  #giveBack(cursor: Cursor): void {
    if (this.#closed || cursor.raises !== this.#raises || performance.now() - cursor.opened >= SERVES_MS) return void close(cursor)
    this.#idle.push(cursor)
    // the newest cursors stay: they serve the most reads
    if (this.#idle.length > KEPT) {
      let oldest = 0
      for (let i = 1; i < this.#idle.length; i++) if (this.#idle[i]!.opened < this.#idle[oldest]!.opened) oldest = i
      void close(this.#idle.splice(oldest, 1)[0]!)
    }
    this.#sweep ??= setTimeout(() => this.#closeOld(), SERVES_MS).unref()
  }

  /** Closes the cursors past their time, and comes back while any stays. */
  #closeOld(): void {
    this.#sweep = undefined
    const now = performance.now()
    for (let i = this.#idle.length - 1; i >= 0; i--) if (now - this.#idle[i]!.opened >= SERVES_MS) void close(this.#idle.splice(i, 1)[0]!)
    if (this.#idle.length > 0) this.#sweep = setTimeout(() => this.#closeOld(), SERVES_MS).unref()
  }
}

/** Releases a cursor's iterator, then its snapshot; a failure leaves nothing to do. */
async function close(cursor: Cursor): Promise<void> {
  await cursor.pages.close().catch(() => {})
  await cursor.snapshot.close().catch(() => {})
}
