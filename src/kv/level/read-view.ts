import { splitFileKey, type FileEntry, type FileMeta, type KeyRange, type ReadView } from '../store.js'
import type { LevelKV } from './level-map.js'
import { asText, type Snapshot } from './ordered-map.js'

/** `Store.readView` on LevelDB: everything read through one snapshot, released on close. */
export class LevelReadView implements ReadView {
  readonly head: number
  readonly floor: number
  readonly #kv: LevelKV
  readonly #snapshot: Snapshot

  private constructor(kv: LevelKV, snapshot: Snapshot, head: number, floor: number) {
    this.#kv = kv
    this.#snapshot = snapshot
    this.head = head
    this.floor = floor
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
    const page = await this.#kv.entryPage('files', range, limit, { snapshot: this.#snapshot })
    return page.map(([key, value]) => ({ ...splitFileKey(key), meta: JSON.parse(asText(value)!) as FileMeta }))
  }

  async users(after: string | undefined, limit: number): Promise<string[]> {
    return (await this.#kv.entryPage('users', after === undefined ? {} : { gt: after }, limit, { snapshot: this.#snapshot })).map(([key]) => key)
  }

  close(): Promise<void> {
    return this.#snapshot.close()
  }
}
