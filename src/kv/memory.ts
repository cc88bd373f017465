import { NAMESPACES, checkBatch, type BatchOp, type KV, type Namespace, type Range, type Value } from './backend.js'

/**
 * An in-memory backend: the second implementation of the KV interface, for tools and for
 * proving that the conformance suite describes the interface rather than LevelDB. Nothing
 * here is durable.
 */
export class MemoryKV implements KV {
  readonly #data = new Map<Namespace, Map<string, Value>>()
  #open = false

  constructor() {
    for (const ns of Object.keys(NAMESPACES) as Namespace[]) this.#data.set(ns, new Map())
  }

  async open(): Promise<void> {
    this.#open = true
  }

  async close(): Promise<void> {
    this.#open = false
  }

  #ns(ns: Namespace): Map<string, Value> {
    if (!this.#open) throw new Error('database is not open')
    return this.#data.get(ns)!
  }

  async get(ns: Namespace, key: string): Promise<Value | undefined> {
    return copy(this.#ns(ns).get(key))
  }

  async getMany(ns: Namespace, keys: string[]): Promise<(Value | undefined)[]> {
    const m = this.#ns(ns)
    return keys.map((k) => copy(m.get(k)))
  }

  async batch(ops: BatchOp[]): Promise<void> {
    // all-or-nothing: check every op before touching anything
    checkBatch(ops)
    for (const op of ops) this.#ns(op.ns)
    for (const op of ops) {
      if (op.type === 'put') this.#ns(op.ns).set(op.key, copy(op.value)!)
      else this.#ns(op.ns).delete(op.key)
    }
  }

  async *entries(ns: Namespace, range: Range): AsyncIterable<[string, Value]> {
    const m = this.#ns(ns)
    const keys = [...m.keys()].filter((k) => inRange(k, range)).sort(compareBytes)
    if (range.reverse) keys.reverse()
    let left = range.limit ?? -1
    for (const k of keys) {
      if (left === 0) return
      const v = m.get(k)
      if (v === undefined) continue
      left--
      yield [k, copy(v)!]
    }
  }

  async *keys(ns: Namespace, range: Range): AsyncIterable<string> {
    for await (const [k] of this.entries(ns, range)) yield k
  }
}

const enc = new TextEncoder()
function compareBytes(a: string, b: string): number {
  return Buffer.compare(enc.encode(a), enc.encode(b))
}

function inRange(k: string, r: Range): boolean {
  if (r.gt !== undefined && compareBytes(k, r.gt) <= 0) return false
  if (r.gte !== undefined && compareBytes(k, r.gte) < 0) return false
  if (r.lt !== undefined && compareBytes(k, r.lt) >= 0) return false
  if (r.lte !== undefined && compareBytes(k, r.lte) > 0) return false
  return true
}

function copy(v: Value | undefined): Value | undefined {
  return v instanceof Uint8Array ? Uint8Array.from(v) : v
}
