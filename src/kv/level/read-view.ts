import { splitFileKey, type FileEntry, type FileMeta, type KeyRange, type ReadView } from '../store.js'
import type { LevelKV, ViewPages } from './level-map.js'
import { asText, type Snapshot } from './ordered-map.js'

/**
 * `Store.readView` on LevelDB: everything read through one snapshot, the files and the users
 * each through one iterator moved from page to page; all released on close.
 */
export class LevelReadView implements ReadView {
  readonly head: number
  readonly floor: number
  readonly #snapshot: Snapshot
  readonly #files: ViewPages
  readonly #users: ViewPages

  private constructor(kv: LevelKV, snapshot: Snapshot, head: number, floor: number) {
    this.#snapshot = snapshot
    this.head = head
    this.floor = floor
    this.#files = kv.viewPages('files', snapshot)
    this.#users = kv.viewPages('users', snapshot)
  }

  static async open(kv: LevelKV): Promise<LevelReadView> {
    const snapshot = kv.snapshot()
    try {
      const head = Number(asText(await kv.get('meta', 'head', { snapshot })) ?? 0)
      const floor = Number(asText(await kv.get('meta', 'floor', { snapshot })) ?? 1)
      return new LevelReadView(kv, snapshot, head, floor)
    } catch (err) {
      await snapshot.close()
      throw err
    }
  }

  async files(range: KeyRange, limit: number): Promise<FileEntry[]> {
    const page = await this.#files.page(range, limit)
    return page.map(([key, value]) => ({ ...splitFileKey(key), meta: JSON.parse(asText(value)!) as FileMeta }))
  }

  async users(after: string | undefined, limit: number): Promise<string[]> {
    return (await this.#users.page(after === undefined ? {} : { gt: after }, limit)).map(([key]) => key)
  }

  async close(): Promise<void> {
    try {
      await Promise.all([this.#files.close(), this.#users.close()])
    } finally {
      await this.#snapshot.close()
    }
  }
}
