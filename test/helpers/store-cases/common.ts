import type { Test } from 'tap'
import type { HearthEvent } from '../../../src/events/event.js'
import type { FileMeta, Store } from '../../../src/kv/store.js'

/**
 * What each engine gives the conformance suite: a fresh, empty store per test, and where it
 * can, the same data reopened (`reopen` closes `store` first) or opened a second time at
 * once (`second`: another process's view — for PostgreSQL another pool, another instance).
 * The factory closes whatever it opened at the test's teardown.
 */
export interface StoreFactory {
  name: string
  open(t: Test): Promise<OpenedStore>
}

export interface OpenedStore {
  store: Store
  reopen?: () => Promise<Store>
  second?: () => Promise<Store>
}

export type Case = (t: Test, factory: StoreFactory) => Promise<unknown>

/** Two users, z32-shaped; BOB's keys sort before ALICE's. */
export const ALICE = 'y'.repeat(52)
export const BOB = 'b'.repeat(52)

export function meta(size: number, extra: Partial<FileMeta> = {}): FileMeta {
  return { size, hash: Buffer.alloc(32, size % 251).toString('base64'), type: 'application/octet-stream', mtime: 1_700_000_000_000 + size, ...extra }
}

export function putEvent(seq: number, user: string, path: string, size = 1): HearthEvent {
  return { seq, type: 'PUT', user, path, contentHash: meta(size).hash, size, ts: 1_700_000_000_000 + seq }
}

export function delEvent(seq: number, user: string, path: string): HearthEvent {
  return { seq, type: 'DEL', user, path, ts: 1_700_000_000_000 + seq }
}

/**
 * A write as the writer makes it: read the file and its user inside the commit, stage the
 * file, the usage and one event. Resolves with the event.
 */
export function writeFile(store: Store, user: string, path: string, size = 1, extra: Partial<FileMeta> = {}): Promise<HearthEvent> {
  return store.commit(async (tx) => {
    const [[old], [rec]] = await Promise.all([tx.files([{ user, path }]), tx.users([user])])
    if (rec === undefined) throw new Error(`no user ${user}`)
    tx.putFile(user, path, meta(size, { seq: tx.head + 1, ...extra }), extra.blob === undefined ? Buffer.alloc(size, 7) : undefined, old)
    tx.setUsage(user, rec.usage - (old?.size ?? 0) + size)
    const ev = putEvent(tx.head + 1, user, path, size)
    tx.append([ev])
    return ev
  })
}

export function deleteFile(store: Store, user: string, path: string): Promise<HearthEvent> {
  return store.commit(async (tx) => {
    const [[old], [rec]] = await Promise.all([tx.files([{ user, path }]), tx.users([user])])
    if (old === undefined || rec === undefined) throw new Error(`no file ${path}`)
    tx.deleteFile(user, path, old)
    tx.setUsage(user, rec.usage - old.size)
    const ev = delEvent(tx.head + 1, user, path)
    tx.append([ev])
    return ev
  })
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

/** Resolves with `promise`, or fails with `what` once `ms` have passed. */
export async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Byte order, as LevelDB and COLLATE "C" keep it (JS `<` compares UTF-16 units). */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

export const seqs = (events: readonly HearthEvent[]): number[] => events.map((e) => e.seq)
export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
