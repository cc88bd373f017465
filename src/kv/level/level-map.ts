import { Level } from 'level'
import { NAMESPACES, checkBatch, type BatchOp, type KV, type Namespace, type Range, type Value } from './ordered-map.js'

type Sub = ReturnType<Level<string, string>['sublevel']>

/** The LevelDB backend: one database, one sublevel per namespace. */
export class LevelKV implements KV {
  readonly #db: Level<string, string>
  readonly #subs = new Map<Namespace, Sub>()

  constructor(location: string) {
    this.#db = new Level<string, string>(location, { keyEncoding: 'utf8', valueEncoding: 'utf8' })
    for (const [ns, enc] of Object.entries(NAMESPACES) as [Namespace, string][]) {
      const valueEncoding = enc === 'bytes' ? 'view' : 'utf8'
      this.#subs.set(ns, this.#db.sublevel<string, any>(ns, { keyEncoding: 'utf8', valueEncoding }) as Sub)
    }
  }

  async open(): Promise<void> {
    await this.#db.open()
  }

  async close(): Promise<void> {
    await this.#db.close()
  }

  #sub(ns: Namespace): Sub {
    return this.#subs.get(ns)!
  }

  async get(ns: Namespace, key: string): Promise<Value | undefined> {
    return (await this.#sub(ns).get(key)) as Value | undefined
  }

  async getMany(ns: Namespace, keys: string[]): Promise<(Value | undefined)[]> {
    return (await this.#sub(ns).getMany(keys)) as (Value | undefined)[]
  }

  async batch(ops: BatchOp[], options: { sync?: boolean } = {}): Promise<void> {
    checkBatch(ops)
    if (ops.length === 0) return
    const mapped = ops.map((op) =>
      op.type === 'put'
        ? { type: 'put' as const, sublevel: this.#sub(op.ns), key: op.key, value: op.value as string }
        : { type: 'del' as const, sublevel: this.#sub(op.ns), key: op.key },
    )
    await this.#db.batch(mapped as any, { sync: options.sync === true })
  }

  async *entries(ns: Namespace, range: Range): AsyncIterable<[string, Value]> {
    for await (const entry of this.#sub(ns).iterator(levelRange(range))) yield entry as [string, Value]
  }

  async *keys(ns: Namespace, range: Range): AsyncIterable<string> {
    for await (const key of this.#sub(ns).keys(levelRange(range))) yield key as string
  }
}

function levelRange(range: Range): Record<string, unknown> {
  const out: Record<string, unknown> = { limit: range.limit ?? -1, reverse: range.reverse === true }
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) if (range[k] !== undefined) out[k] = range[k]
  return out
}
