import type { Readable } from 'node:stream'
import type { HearthEvent } from '../events/event.js'
import type { ConsumerChange, ConsumerRecord, CreateConsumerResult } from './consumer-record.js'

export type * from './consumer-record.js'

/**
 * The storage interface: what Hearth needs of an engine, at the level where its guarantees
 * live. Two engines implement it — LevelDB for one process (src/kv/level/), PostgreSQL for
 * many processes on one database (src/kv/postgres/) — and both pass test/store-conformance.
 *
 * Rules (clash, quota, seq assignment) live above it, in the writer: the engine's part is to
 * run a commit group as one transaction that sees every earlier commit and lands whole or
 * not at all, durably, with the log's head moved in the same commit.
 */
export interface Store {
  /** `leveldb` or `postgres`, for logs and start-up lines */
  readonly engine: string
  /** where the data lives, for start-up lines (a folder, or a database URL without password) */
  readonly location: string
  readonly supports: StoreSupports
  readonly blobs: BlobStore
  /** A cheap round trip: resolves while the engine answers, rejects when it does not. */
  ping(): Promise<void>
  close(): Promise<void>

  /**
   * Runs `work` as one transaction holding the commit lock, so it sees every commit before it
   * and none can interleave. What `work` stages through `tx` lands atomically and durably
   * (fsync, or a synchronous COMMIT) with the head raised by the number of appended events;
   * if `work` throws, or the commit fails, nothing lands and no seq is used.
   */
  commit<T>(work: (tx: CommitTx) => Promise<T>): Promise<T>

  /** Highest committed seq in storage (0 for an empty log). */
  head(): Promise<number>
  /** Oldest retained seq (1 until something is pruned). */
  floor(): Promise<number>
  /**
   * Events with after < seq ≤ upTo, oldest first, at most `limit`, and the floor, both as one
   * snapshot of storage saw them: every event in (max(after, floor − 1), end] is in the page
   * (`end` being its last event's seq when it is full, else `upTo`), so a reader can always tell
   * "pruned" (below the floor) from "not there". An engine may never answer an older floor
   * with newer events.
   */
  readLog(after: number, upTo: number, limit: number): Promise<LogRead>
  /** Events with seq < before, newest first, at most `limit`. */
  readLogReverse(before: number, limit: number): Promise<HearthEvent[]>
  /**
   * One user's events with after < seq ≤ upTo, oldest first, with the floor of the same
   * snapshot, as `readLog`. With `under`, only the events whose path starts with it: `limit`
   * counts those, so what a page holds depends on nothing else.
   */
  readUserLog(user: string, after: number, upTo: number, limit: number, under?: string): Promise<LogRead>
  /** One user's events with seq < before, newest first (only those under `under`, as readUserLog). */
  readUserLogReverse(user: string, before: number, limit: number, under?: string): Promise<HearthEvent[]>
  /** Raises the floor to at least `floor` (never lowers it); resolves with the floor now stored. */
  raiseFloor(floor: number): Promise<number>
  /**
   * Deletes up to `limit` events below the stored floor; resolves with how many it removed
   * (0 when none are left, or when another process is pruning right now).
   */
  pruneBelowFloor(limit: number): Promise<number>
  /**
   * Calls `listener` when commits made by other processes may have raised the head (with
   * the new head when the engine knows it). Engines for one process never call it.
   */
  watch(listener: (head?: number) => void): () => void

  /** A file's metadata. */
  fileMeta(user: string, path: string): Promise<FileMeta | undefined>
  /** The content of a file stored inline (no blob), as last committed. */
  inlineContent(user: string, path: string): Promise<Uint8Array | undefined>
  /** File keys (`<z32><path>`) in byte order within the range. */
  fileKeys(range: KeyRange): AsyncIterable<string>
  /**
   * A view of one committed state (head, floor, files, users), read in as many steps as needed
   * and seeing no commit made after it opened: one LevelDB snapshot, one PostgreSQL read-only
   * repeatable-read transaction (which holds a connection: close the view soon, and before
   * waiting on anything slow).
   */
  readView(): Promise<ReadView>

  user(user: string): Promise<UserRecord | undefined>
  /** How many users there are and the sum of their usage: for metrics, read at each scrape. */
  totals(): Promise<{ users: number; bytes: number }>
  /** Creates a user with usage 0, redeeming `signupToken` in the same transaction when given. */
  createUser(user: string, createdAt: number, signupToken?: string): Promise<CreateUserResult>
  /** Stores a new signup token; false when the token already exists. */
  addSignupToken(token: string, createdAt: number): Promise<boolean>

  putSession(secret: string, session: SessionRecord): Promise<void>
  session(secret: string): Promise<SessionRecord | undefined>
  /** Removes a session; every process's `onSessionDeleted` listeners hear of it. */
  deleteSession(secret: string): Promise<void>
  onSessionDeleted(listener: (secret: string) => void): () => void
  /**
   * Removes every session created before `createdBefore` (microseconds, as SessionRecord
   * counts): an expired session leaves storage even if nobody uses it again. Every process's
   * `onSessionDeleted` listeners hear of each. Resolves with how many.
   */
  forgetSessions(createdBefore: number): Promise<number>

  /** Records an AuthToken key until `expiresAt` (ms); false when it was already recorded. */
  claimToken(key: string, expiresAt: number): Promise<boolean>
  /** Drops recorded tokens that expired before `now`; resolves with how many. */
  forgetTokens(now: number): Promise<number>

  /** The homeserver's secret key: the stored one, else `generate()`'s, stored once for all. */
  homeserverSecret(generate: () => Uint8Array): Promise<Uint8Array>

  /** Where a relay stands on each homeserver it follows, as last committed: every cursor, or those named. */
  upstreamCursors(names?: readonly string[]): Promise<UpstreamCursor[]>

  /** One owner's durable consumers (SPEC §12), by id. */
  consumers(owner: string): Promise<ConsumerRecord[]>
  consumer(owner: string, id: string): Promise<ConsumerRecord | undefined>
  /**
   * Stores a new consumer, durably: 'exists' when the owner has one with its id (nothing is
   * changed), 'full' when the owner has `maxPerOwner` already. One owner's creations run one
   * at a time, also across processes, so the cap holds.
   */
  createConsumer(record: ConsumerRecord, maxPerOwner: number): Promise<CreateConsumerResult>
  /**
   * Runs `change` on the stored record while holding its lock (no other update of it, in any
   * process, interleaves) and stores, durably and in the same transaction, the record it
   * returns; resolves with the change, or undefined when there is no such consumer. `change`
   * must not mutate the record it gets, and keeps in the one it returns the parts it did not
   * touch (the same objects): the engines write only what differs (consumer-parts.ts).
   */
  updateConsumer<T>(owner: string, id: string, change: (record: ConsumerRecord) => ConsumerChange<T>): Promise<ConsumerChange<T> | undefined>
  /** Removes a consumer; false when there was none. */
  deleteConsumer(owner: string, id: string): Promise<boolean>
}

/** One page of the log, and the floor as the same snapshot of storage saw it. */
export interface LogRead {
  events: HearthEvent[]
  floor: number
}

/**
 * A commit the engine refused for what it holds (a limit or a constraint of the engine's own,
 * such as an index entry too large), not for being unavailable: the same writes would be
 * refused again, while other writes of the same group could land. Engines throw it from
 * `commit`; nothing landed.
 */
export class WriteRefused extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'WriteRefused'
  }
}

/** What an engine offers, so callers adapt by capability rather than by engine name. */
export interface StoreSupports {
  /** Several processes may share the data at once (caches must not outlive a change elsewhere). */
  manyProcesses: boolean
}

/** One commit group's view of storage: reads see every earlier commit; writes are staged. */
export interface CommitTx {
  /** The log's head when the transaction took the commit lock. */
  readonly head: number
  files(refs: readonly FileRef[]): Promise<(FileMeta | undefined)[]>
  users(users: readonly string[]): Promise<(UserRecord | undefined)[]>
  /**
   * For each folder (a path without its trailing `/`), how many stored files lie below it,
   * or `cap` when at least that many do. Each costs one indexed read, or one range read of at
   * most `cap` keys: the clash check must not cost more for a deep path or a large folder.
   */
  countUnder(folders: readonly FileRef[], cap: number): Promise<number[]>
  /** `old` is what `files()` returned for the path, so the engine can release its blob. */
  putFile(user: string, path: string, meta: FileMeta, inline: Uint8Array | undefined, old: FileMeta | undefined): void
  deleteFile(user: string, path: string, old: FileMeta): void
  setUsage(user: string, usage: number): void
  /** Events with seqs head+1, head+2, … in order; the head moves with the commit. */
  append(events: readonly HearthEvent[]): void
  /** The stored cursors of these upstreams (a relay's), in the same order. */
  upstreamCursors(upstreams: readonly string[]): Promise<(UpstreamCursor | undefined)[]>
  /**
   * For each prefix, the stored cursors whose names begin with it, in byte order of their names
   * (a relay names a followed filter's cursor `<homeserver>|<filter>`: one user's on one
   * homeserver share a prefix). A prefix must end in an ASCII character other than DEL.
   */
  upstreamCursorsUnder(prefixes: readonly string[]): Promise<UpstreamCursor[][]>
  /** Stages an upstream's new cursor (forward, or back to 0 after a rewind): it lands with the events it covers, or not at all. */
  setUpstreamCursor(cursor: UpstreamCursor): void
}

/** The first name past every name that begins with `prefix` (which ends in an ASCII character other than DEL), in byte order. */
export function pastPrefix(prefix: string): string {
  const last = prefix.charCodeAt(prefix.length - 1)
  if (!(last < 0x7f)) throw new RangeError('a prefix must end in an ASCII character other than DEL')
  return prefix.slice(0, -1) + String.fromCharCode(last + 1)
}

/**
 * A relay's position on one upstream homeserver: the last upstream seq whose event is in
 * this log. Kept in the commit that appends those events, so the two never disagree.
 */
export interface UpstreamCursor {
  /** the source its events come from: a URL, or a homeserver key resolved through pkarr (src/relay/upstream-spec.ts) */
  upstream: string
  /** the z32 key the source was proven to speak for when the relay first followed it */
  homeserver: string
  /** the last upstream seq relayed (0: none yet) */
  cursor: number
}

export interface FileRef {
  user: string
  path: string
}

export interface FileMeta {
  size: number
  /** base64 blake3 */
  hash: string
  type: string
  /** ms since the epoch of the write */
  mtime: number
  /**
   * the seq of the write that made the file what it is; a file last written before stores
   * kept it gets, at the open that upgrades them, the seq of its write if the log still holds
   * it, else the floor − 1 then (a bound: its write came no later)
   */
  seq?: number
  /** set when the content lives in a blob rather than inline */
  blob?: string
}

/** A user's record; `usage` is owned by the write path (CommitTx.setUsage), nothing else. */
export interface UserRecord {
  createdAt: number
  usage: number
}

export interface SessionRecord {
  user: string
  /** capabilities as text: `/pub/app/:rw,...` */
  capabilities: string
  /** microseconds since the epoch, as SessionInfo carries it */
  createdAt: number
}

export type CreateUserResult = 'created' | 'exists' | 'unknown-token' | 'used-token'

/** One committed state of the store; see `Store.readView`. */
export interface ReadView {
  readonly head: number
  readonly floor: number
  /** files with `fileKey` in `range`, in key order, at most `limit` */
  files(range: KeyRange, limit: number): Promise<FileEntry[]>
  /** users whose key sorts after `after` (all when undefined), in key order, at most `limit` */
  users(after: string | undefined, limit: number): Promise<string[]>
  close(): Promise<void>
}

export interface FileEntry {
  user: string
  path: string
  meta: FileMeta
}

export interface KeyRange {
  gt?: string
  gte?: string
  lt?: string
  lte?: string
  reverse?: boolean
  limit?: number
}

/**
 * File bodies too large to live inline. A blob is durable once its upload finishes, before
 * the commit that references it; one nobody references is removed by the engine's sweep,
 * which never touches an upload still in progress.
 */
export interface BlobStore {
  create(): Promise<BlobUpload>
  /**
   * The bytes of a blob, or undefined when it is gone (replaced since its id was read). Once
   * a stream is returned it yields the whole blob even if the blob is removed meanwhile.
   */
  openRead(id: string): Promise<Readable | undefined>
  /** Releases a blob that no committed file references any more. */
  remove(id: string): Promise<void>
}

export interface BlobUpload {
  readonly id: string
  write(chunk: Uint8Array): Promise<void>
  /** Makes the bytes durable. */
  finish(): Promise<void>
  /** Throws the partial upload away. */
  abort(): Promise<void>
}

/** `<z32><path>`: how files are keyed, so one user's files are one contiguous range. */
export const fileKey = (user: string, path: string): string => user + path

/** A user's key in z-base-32 is 52 characters: a file key splits there into user and path. */
export const USER_KEY_LENGTH = 52

/**
 * The order of keys in every engine: UTF-8 byte order. JS `<` compares UTF-16 units, which
 * disagrees for characters above U+FFFF (a surrogate pair sorts before U+E000..U+FFFF).
 */
export function keyOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // UTF-16 units order as code points, and so as UTF-8 bytes, except that a surrogate (half
    // of a code point past U+FFFF) sorts after every unit of the BMP, those above it too
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    return xs === ys ? x - y : xs ? 1 : -1
  }
  return a.length - b.length
}

export function splitFileKey(key: string): { user: string; path: string } {
  return { user: key.slice(0, USER_KEY_LENGTH), path: key.slice(USER_KEY_LENGTH) }
}
