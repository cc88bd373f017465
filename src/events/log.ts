import type { KV } from '../kv/backend.js'
import { asText } from '../kv/backend.js'
import type { HearthEvent } from './event.js'

export const seqKey = (seq: number): string => seq.toString(16).padStart(16, '0')
export const userSeqKey = (user: string, seq: number): string => `${user}:${seqKey(seq)}`

export type AppendListener = (events: readonly HearthEvent[]) => void

/**
 * The read side of the event log, and the one place that announces new events.
 *
 * Invariant: `head` is the highest seq that is both fsynced and announced. Readers never
 * return events above `head`, even when the database already holds them: an event becomes
 * visible to replays in the same tick in which it is pushed to live subscribers, which is
 * what lets a subscriber switch from replay to live without a gap or a repeat.
 */
export class EventLog {
  readonly #kv: KV
  readonly #listeners = new Set<AppendListener>()
  #head = 0
  #floor = 1

  constructor(kv: KV) {
    this.#kv = kv
  }

  get head(): number {
    return this.#head
  }

  /** The oldest retained seq; events below it were pruned. */
  get floor(): number {
    return this.#floor
  }

  async load(): Promise<void> {
    this.#head = Number(asText(await this.#kv.get('meta', 'head')) ?? 0)
    this.#floor = Number(asText(await this.#kv.get('meta', 'floor')) ?? 1)
  }

  onAppend(listener: AppendListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Called by the writer once a group is on disk, in seq order. */
  announce(events: readonly HearthEvent[]): void {
    if (events.length === 0) return
    this.#head = events[events.length - 1]!.seq
    for (const listener of this.#listeners) listener(events)
  }

  /** Events with seq > after, oldest first, at most `limit`, never above head. */
  async read(after: number, limit: number): Promise<HearthEvent[]> {
    return this.#collect(this.#kv.entries('log', { gt: seqKey(after), lte: seqKey(this.#head), limit }))
  }

  /** Newest first: events with seq < before. */
  async readReverse(before: number, limit: number): Promise<HearthEvent[]> {
    const lt = seqKey(Math.min(before, this.#head + 1))
    return this.#collect(this.#kv.entries('log', { lt, reverse: true, limit }))
  }

  /** One user's events with seq > after, from the per-user index. */
  async readUser(user: string, after: number, limit: number): Promise<HearthEvent[]> {
    const range = { gt: userSeqKey(user, after), lte: userSeqKey(user, this.#head), limit }
    return this.#collect(this.#kv.entries('ulog', range))
  }

  async readUserReverse(user: string, before: number, limit: number): Promise<HearthEvent[]> {
    const lt = userSeqKey(user, Math.min(before, this.#head + 1))
    return this.#collect(this.#kv.entries('ulog', { gte: `${user}:`, lt, reverse: true, limit }))
  }

  async #collect(entries: AsyncIterable<[string, unknown]>): Promise<HearthEvent[]> {
    const out: HearthEvent[] = []
    for await (const [, value] of entries) out.push(JSON.parse(value as string) as HearthEvent)
    return out
  }

  /**
   * Drops events below `newFloor` in chunks, so retention never holds up writes for long.
   * The floor moves first: a reader that races the deletion sees a reset, not a hole.
   */
  async prune(newFloor: number, chunk = 1000): Promise<number> {
    if (newFloor <= this.#floor) return 0
    newFloor = Math.min(newFloor, this.#head + 1)
    this.#floor = newFloor
    await this.#kv.batch([{ type: 'put', ns: 'meta', key: 'floor', value: String(newFloor) }], { sync: true })
    let removed = 0
    for (;;) {
      const entries: [string, string][] = []
      // From the very start, not the old floor: a crash mid-prune leaves entries below it.
      for await (const [k, v] of this.#kv.entries('log', { lt: seqKey(newFloor), limit: chunk })) {
        entries.push([k, v as string])
      }
      if (entries.length === 0) return removed
      const ops = entries.flatMap(([k, v]) => {
        const ev = JSON.parse(v) as HearthEvent
        return [
          { type: 'del' as const, ns: 'log' as const, key: k },
          { type: 'del' as const, ns: 'ulog' as const, key: userSeqKey(ev.user, ev.seq) },
        ]
      })
      await this.#kv.batch(ops)
      removed += entries.length
    }
  }

  /** The seq of the first event at or after `ts` (ms), for duration-based retention. */
  async firstSeqSince(ts: number): Promise<number> {
    for await (const [, v] of this.#kv.entries('log', { gte: seqKey(this.#floor) })) {
      const ev = JSON.parse(v as string) as HearthEvent
      if (ev.ts >= ts) return ev.seq
    }
    return this.#head + 1
  }
}
