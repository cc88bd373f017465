import { Level } from 'level'
import type { LogEvent } from 'hearth-homeserver-client'

/** A path's row: the file as the newest event seen made it, or a tombstone when that event was a DEL. */
export type SharedRow = { size: number; contentHash: string; seq: string } | { deleted: true; seq: string }

/**
 * One worker's part of a view built by several processes that share one durable consumer:
 * each holds the events it was handed, `files/<user><path>` → its newest row. The homeserver
 * hands a user's events out in order, one at a time, across all workers (explicit acks), so
 * for every path the newest row among the parts is the file as it is; a DEL is kept as a
 * tombstone, since the PUT it undoes may sit in another part. A redelivered event is at or
 * below its path's row, and changes nothing. `merged` reads the parts back as one view.
 */
export class SharedView {
  readonly db: Level<string, string>
  readonly #files

  private constructor(path: string) {
    this.db = new Level<string, string>(path)
    this.#files = this.db.sublevel<string, SharedRow>('files', { valueEncoding: 'json' })
  }

  static async open(path: string): Promise<SharedView> {
    const view = new SharedView(path)
    await view.db.open()
    return view
  }

  /** Applies one event, durably, before its ack; resolves true when it changed this part. */
  async apply(ev: LogEvent): Promise<boolean> {
    const key = ev.user + ev.path
    const old = await this.#files.get(key)
    if (old !== undefined && BigInt(old.seq) >= BigInt(ev.seq)) return false
    const row: SharedRow = ev.type === 'PUT' ? { size: ev.size ?? 0, contentHash: ev.contentHash ?? '', seq: ev.seq } : { deleted: true, seq: ev.seq }
    // classic-level's `sync`, which the abstract options type does not name: on disk before the ack
    await this.#files.put(key, row, { sync: true } as object)
    return true
  }

  async close(): Promise<void> {
    await this.db.close()
  }

  /** The parts at `paths` as one view: per path the newest row, tombstones dropped. */
  static async merged(paths: readonly string[]): Promise<Map<string, { size: number; contentHash: string; seq: string }>> {
    const newest = new Map<string, SharedRow>()
    for (const path of paths) {
      const part = await SharedView.open(path)
      try {
        for (const [key, row] of await part.#files.iterator().all()) {
          const held = newest.get(key)
          if (held === undefined || BigInt(row.seq) > BigInt(held.seq)) newest.set(key, row)
        }
      } finally {
        await part.close()
      }
    }
    const files = new Map<string, { size: number; contentHash: string; seq: string }>()
    for (const [key, row] of [...newest].sort(([a], [b]) => (a < b ? -1 : 1))) if (!('deleted' in row)) files.set(key, row)
    return files
  }
}
