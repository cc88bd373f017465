import type { KeyRange } from '../store.js'

/**
 * The LevelDB engine's inner layer: an ordered key-value map split into named namespaces,
 * with atomic, optionally fsynced batches. LevelStore (store.ts) lays Hearth's data out on
 * it; nothing outside this folder sees it.
 *
 * Keys are strings compared by their UTF-8 bytes. Values are strings, except in namespaces
 * declared `bytes`, where they are Uint8Arrays.
 */
export const NAMESPACES = {
  /** `<z32><path>` → FileMeta JSON */
  files: 'utf8',
  /** `<z32><path>` → content of files small enough to live inline */
  content: 'bytes',
  /** 16 hex digits of seq → event JSON */
  log: 'utf8',
  /** `folderKey` of a folder up to INDEXED_LEVELS deep → how many files lie below it (folder-index.ts; absent: none) */
  folders: 'utf8',
  /** `<z32>:<16 hex seq>` → event JSON, the per-user index of the log */
  ulog: 'utf8',
  /** blob id → `<z32><path>` that owns it, so unowned blob files can be swept */
  blobs: 'utf8',
  /** `<z32>` → user JSON (created, usage) */
  users: 'utf8',
  /** session secret → session JSON */
  sessions: 'utf8',
  /** signup token → JSON */
  signupTokens: 'utf8',
  /** small singletons: `head`, `floor` */
  meta: 'utf8',
  /** AuthToken key → ms when it expires, so a token is accepted once, also after a restart */
  replay: 'utf8',
  /** a relay's upstream (as configured) → UpstreamCursor JSON */
  upstreams: 'utf8',
  /** `<owner z32>:<ulid>` → the head of a ConsumerRecord (all but `outstanding`, consumer-parts.ts) JSON */
  consumers: 'utf8',
  /** `<owner z32>:<ulid>:<16 hex seq>` → one outstanding event of the consumer (Outstanding JSON) */
  consumerEvents: 'utf8',
} as const

export type Namespace = keyof typeof NAMESPACES
export type Value = string | Uint8Array

export type BatchOp =
  | { type: 'put'; ns: Namespace; key: string; value: Value }
  | { type: 'del'; ns: Namespace; key: string }

/** Bounds in key order, as the store's file-key listing takes them. */
export type Range = KeyRange

export interface KV {
  open(): Promise<void>
  close(): Promise<void>
  get(ns: Namespace, key: string, options?: ReadOptions): Promise<Value | undefined>
  getMany(ns: Namespace, keys: string[]): Promise<(Value | undefined)[]>
  /** All ops land or none do; with `sync` the call resolves only once they are on disk. */
  batch(ops: BatchOp[], options?: { sync?: boolean }): Promise<void>
  /** Entries in key order (or reverse), within the range. */
  entries(ns: Namespace, range: Range): AsyncIterable<[string, Value]>
  keys(ns: Namespace, range: Range): AsyncIterable<string>
  /** The values of up to `limit` entries in key order (or reverse), within the range, read as one page. */
  values(ns: Namespace, range: Range, limit: number, options?: ReadOptions): Promise<Value[]>
  /** A view of the database as it stood when it was taken, for reads that must agree; close it. */
  snapshot(): Snapshot
}

/** An open read snapshot: it holds back LevelDB's compactions until closed. */
export interface Snapshot {
  close(): Promise<void>
}

export interface ReadOptions {
  /** read as of this snapshot instead of now */
  snapshot?: Snapshot
  /** only the values it keeps, and `limit` counts only those */
  keep?: (value: Value) => boolean
}

/**
 * Refuses a batch that names an unknown namespace or op, a key that is not a string, or a
 * value of the wrong kind for its namespace. Backends call it before touching anything, so
 * a malformed batch applies nothing (a backend must never half-apply one).
 */
export function checkBatch(ops: readonly BatchOp[]): void {
  for (const op of ops) {
    const enc = Object.hasOwn(NAMESPACES, op.ns) ? NAMESPACES[op.ns] : undefined
    if (enc === undefined) throw new TypeError(`unknown namespace ${String(op.ns)}`)
    if (typeof op.key !== 'string') throw new TypeError(`a key in ${op.ns} must be a string`)
    if (op.type === 'del') continue
    if (op.type !== 'put') throw new TypeError(`unknown batch op ${String((op as { type: unknown }).type)}`)
    const ok = enc === 'bytes' ? op.value instanceof Uint8Array : typeof op.value === 'string'
    if (!ok) throw new TypeError(`a value in ${op.ns} must be ${enc === 'bytes' ? 'a Uint8Array' : 'a string'}`)
  }
}

export function asText(v: Value | undefined): string | undefined {
  if (v === undefined || typeof v === 'string') return v
  return new TextDecoder().decode(v)
}
