import { Transform } from 'node:stream'
import t, { type Test } from 'tap'
import {
  follow, idOf, MemoryCursorStore, ResetError,
  type Follower, type FollowState, type LogEvent, type SnapshotFile, type SnapshotHandler, type SnapshotStart, type SnapshotSynced,
} from 'hearth-homeserver-client'
import type { HomeserverClient } from 'hearth-homeserver-client'
import { AckedWrites, type AckedEvent } from './helpers/acked-writes.js'
import { newUser, startTestServer } from './helpers/server.js'
import { storedFiles, type StoredFile } from './helpers/stored-files.js'
import { TcpProxy } from './helpers/tcp-proxy.js'
import { until } from './helpers/until.js'

/**
 * `follow({ snapshot })` against a real homeserver (SPEC §13): the files handed to the
 * handler, then the events through the iterator; a follower stopped in the middle resumes
 * the snapshot from the token in its cursor store; a pruned log makes it start again. The
 * consumer here keeps, per path, the frame with the highest seq, as the handler's contract
 * asks; what it holds is compared with the acknowledged writes and with the storage API.
 */

const byKey = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))
const sorted = <V>(m: Map<string, V>) => new Map([...m].sort(([a], [b]) => byKey(a, b)))

/** A consumer of a snapshot, then of the events after it. */
class Consumer implements SnapshotHandler {
  readonly state = new Map<string, { seq: bigint; file?: StoredFile }>()
  readonly starts: SnapshotStart[] = []
  readonly handed: SnapshotFile[] = []
  synced: { at: SnapshotSynced; files: Map<string, StoredFile> } | undefined
  /** the highest seq applied, from a frame or an event */
  top = 0n
  error: unknown
  afterFile: (() => void) | undefined

  onStart(start: SnapshotStart): void {
    this.starts.push(start)
    this.state.clear()
    this.synced = undefined
  }

  onFile(file: SnapshotFile): void {
    this.handed.push(file)
    this.apply(file)
    this.afterFile?.()
  }

  onSynced(synced: SnapshotSynced): void {
    this.synced = { at: synced, files: this.files() }
  }

  /** The rule of the handler's contract: per path, the statement with the highest seq wins. */
  apply(e: LogEvent): void {
    const seq = BigInt(e.seq)
    if (seq > this.top) this.top = seq
    const held = this.state.get(e.user + e.path)
    if (held !== undefined && held.seq >= seq) return
    this.state.set(e.user + e.path, { seq, file: e.type === 'PUT' ? { size: e.size!, contentHash: e.contentHash! } : undefined })
  }

  files(): Map<string, StoredFile> {
    const out = new Map<string, StoredFile>()
    for (const [key, held] of this.state) if (held.file !== undefined) out.set(key, held.file)
    return sorted(out)
  }

  /** Another consumer holding what this one built, as a consumer that keeps its state in its own database would after a restart. */
  copy(): Consumer {
    const next = new Consumer()
    for (const [key, held] of this.state) next.state.set(key, held)
    next.top = this.top
    return next
  }
}

/** Applies every event the follower hands out until it ends (at the latest with the test); a failure is kept for the test to see. */
function consume(t: Test, f: Follower, c: Consumer): Promise<void> {
  t.teardown(() => f.close())
  return (async () => {
    for await (const e of f) c.apply(e)
  })().catch((err: unknown) => void (c.error = err))
}

/** The files under `prefix` after every acknowledged write up to `seq`. */
function filesAt(writes: readonly AckedEvent[], seq: number, prefix: string): Map<string, StoredFile> {
  const out = new Map<string, StoredFile>()
  for (const w of writes) {
    if (w.seq > seq || !w.path.startsWith(prefix)) continue
    if (w.type === 'PUT') out.set(w.user + w.path, { size: w.size!, contentHash: w.contentHash! })
    else out.delete(w.user + w.path)
  }
  return sorted(out)
}

/** Saves, as the follower made them. */
class RecordingStore extends MemoryCursorStore {
  readonly saved: string[] = []
  override async save(id: string): Promise<void> {
    this.saved.push(id)
    await super.save(id)
  }
}

/** PUTs and DELETEs over `path(i)` by turns of `users`, until `running()` says stop. */
async function racingWrites(writes: AckedWrites, users: HomeserverClient[], path: (i: number) => string, running: () => boolean): Promise<void> {
  for (let n = 0; running(); n++) {
    const u = users[n % users.length]!
    if (n % 4 === 3) await writes.delete(u, path(n * 13)).catch(() => {}) // a 404 writes nothing
    else await writes.put(u, path(n * 13), `r${n}`)
  }
}

t.test('a snapshot, then live: the files at synced in key order, then each event; the store holds tokens, then ids', async (t) => {
  const server = await startTestServer(t)
  const [a, b] = await Promise.all([newUser(server), newUser(server)])
  const writes = new AckedWrites()
  for (const p of ['/pub/app/1', '/pub/app/2', '/pub/app/gone', '/pub/other/x', '/priv/app/secret']) await writes.put(a, p, `of ${p}`)
  await writes.put(b, '/pub/app/3', 'bob')
  await writes.delete(a, '/pub/app/gone')
  await writes.put(a, '/pub/app/1', 'again')
  const head = writes.events.at(-1)!.seq

  const store = new RecordingStore()
  const consumer = new Consumer()
  const states: FollowState[] = []
  let syncedWhenLive: boolean | undefined
  const f = follow({
    url: server.url, filters: ['*/pub/app/*'], cursorStore: store, snapshot: consumer,
    onState: (s) => {
      states.push(s)
      if (s === 'live') syncedWhenLive = consumer.synced !== undefined
    },
  })
  const running = consume(t, f, consumer)
  await until(() => f.state === 'live' || consumer.error !== undefined, 'the follower to be live', 30_000, () => [f.state, String(consumer.error)])
  t.same(consumer.starts, [{ cause: 'new' }], 'an empty cursor store: a new snapshot')
  t.same(consumer.synced?.at, { id: idOf(head), seq: String(head), files: 3 }, 'synced at the head')
  t.same(consumer.synced?.files, filesAt(writes.events, head, '/pub/app/'), 'at synced, exactly the files then')
  const keys = consumer.handed.map((file) => file.user + file.path)
  t.same(keys, [...keys].sort(byKey), 'in key order')
  t.ok(consumer.handed.every((file) => file.snapshot && file.type === 'PUT' && file.cursor.startsWith('~')), 'each a file of the snapshot, with a resume token')
  const one = consumer.handed.find((file) => file.path === '/pub/app/1')!
  t.equal(one.seq, String(writes.events.findLast((w) => w.path === '/pub/app/1')!.seq), 'with the seq of the write that made it what it is')
  t.equal(one.id, idOf(BigInt(one.seq)))
  t.equal(syncedWhenLive, true, 'live only after synced')
  t.same(states, ['catching-up', 'live'])
  const tokens = store.saved.slice(0, -1)
  t.ok(tokens.length > 0 && tokens.every((s) => consumer.handed.some((file) => file.cursor === s)), `tokens saved during the snapshot: ${tokens.join(' ')}`)
  t.same(store.saved.at(-1), idOf(head), 'then the id of synced')

  const live = [await writes.put(b, '/pub/app/4', 'live'), await writes.put(a, '/pub/other/y', 'not followed'), await writes.delete(a, '/pub/app/2')]
  await until(() => consumer.top >= live[2]!.seq, 'the live events', 30_000, () => String(consumer.top))
  t.same(consumer.files(), await storedFiles([a, b], '/pub/app/'), 'then the events: the files the storage API lists')
  await until(() => store.id === idOf(live[2]!.seq), 'the last event acknowledged and saved', 10_000, () => store.id)
  t.equal(consumer.handed.length, 3, 'live events go through the iterator, not the handler')
  await f.close()
  await running
  t.equal(consumer.error, undefined)
})

t.test('a follower stopped in the middle of a snapshot resumes it from the stored token, under racing writes, and ends with the files', async (t) => {
  const server = await startTestServer(t)
  const users = await Promise.all([newUser(server), newUser(server), newUser(server)])
  const writes = new AckedWrites()
  const path = (i: number) => `/pub/s/${(i * 7919) % 1000}`
  for (let i = 0; i < 600; i++) await writes.put(users[i % 3]!, path(i), `v${i}`)
  let writing = true
  const racing = racingWrites(writes, users, path, () => writing)

  const store = new MemoryCursorStore()
  const first = new Consumer()
  const stop = new AbortController()
  first.afterFile = () => first.handed.length === 200 && stop.abort()
  await consume(t, follow({ url: server.url, filters: ['*/pub/s/*'], cursorStore: store, snapshot: first, signal: stop.signal }), first)
  t.equal(first.error, undefined)
  t.equal(first.handed.length, 200, 'stopped after 200 frames')
  t.equal(first.synced, undefined, 'before synced')
  t.equal(store.id, first.handed[199]!.cursor, 'the store holds the token of the last frame processed')

  const from = writes.events.length
  await until(() => writes.events.length > from + 100, 'writes while the follower is away', 30_000, () => writes.events.length)
  const second = first.copy()
  const f = follow({ url: server.url, filters: ['*/pub/s/*'], cursorStore: store, snapshot: second })
  const running = consume(t, f, second)
  await until(() => second.synced !== undefined || second.error !== undefined, 'synced', 60_000, () => [second.handed.length, String(second.error)])
  t.same(second.starts, [], 'resumed, not started again')
  const last = first.handed[199]!
  t.ok(byKey(second.handed[0]!.user + second.handed[0]!.path, last.user + last.path) > 0, 'from the file after the last one processed')
  t.ok(second.handed.some((file) => !file.snapshot), 'the writes made while the rest was read came before synced')
  writing = false
  await racing
  const synced = Number(second.synced!.at.seq)
  t.same(second.synced!.files, filesAt(writes.events, synced, '/pub/s/'), `at synced (${synced}), exactly the files then`)

  const head = writes.events.at(-1)!.seq
  await until(() => second.top >= head, 'the last write', 30_000, () => String(second.top))
  t.same(second.files(), filesAt(writes.events, head, '/pub/s/'), 'after the last write, exactly the files then')
  t.same(second.files(), await storedFiles(users, '/pub/s/'), 'the files the storage API lists')
  await f.close()
  await running
  t.equal(second.error, undefined)
})

t.test('a connection cut in the middle of a snapshot is reopened after the last frame received: nothing twice, nothing missed', async (t) => {
  const server = await startTestServer(t)
  // the first connection ends right after the 10th file's frame, however much the server has sent
  const proxy = await TcpProxy.start(t, server.url, () => endBeforeFrame(11))
  const a = await newUser(server)
  const writes = new AckedWrites()
  for (let i = 0; i < 300; i++) await writes.put(a, `/pub/c/${String(i).padStart(3, '0')}`, `v${i}`)
  const resumes: (string | null)[] = []
  const consumer = new Consumer()
  const f = follow({
    url: proxy.url, cursorStore: 'memory', filters: [`${a.user}/pub/c/*`], snapshot: consumer, backoff: { baseMs: 10, maxMs: 50 },
    fetch: (input, init) => {
      if (String(input).includes('/subscribe')) resumes.push(new Headers(init?.headers).get('last-event-id'))
      return fetch(input, init)
    },
  })
  const running = consume(t, f, consumer)
  await until(() => consumer.synced !== undefined || consumer.error !== undefined, 'synced', 30_000, () => String(consumer.error))
  t.equal(resumes.length, 2, 'one reconnect')
  t.equal(resumes[0], null, 'the first stream from the beginning of the snapshot')
  t.match(resumes[1], /^~/, 'the second after a resume token')
  const keys = consumer.handed.map((file) => file.path)
  t.same(keys, writes.events.map((w) => w.path), 'every file once, in key order')
  t.same(consumer.starts, [{ cause: 'new' }])
  await f.close()
  await running
  t.equal(consumer.error, undefined)
})

/** Whether a connection was ended by `endBeforeFrame`. */
let ended = false

/**
 * What the server sends, passed on up to the `n`th snapshot frame (the nth id that is a resume
 * token), where the connection ends; once, so later connections pass everything.
 */
function endBeforeFrame(n: number): Transform {
  let seen = 0
  let mine = false
  return new Transform({
    transform(chunk: Buffer, _encoding, next) {
      if (mine) return next() // after the end: dropped
      if (ended) return next(null, chunk)
      const text = chunk.toString('latin1')
      for (let i = text.indexOf('id: ~'); i >= 0; i = text.indexOf('id: ~', i + 1)) {
        if (++seen < n) continue
        ended = mine = true
        this.push(chunk.subarray(0, i))
        this.push(null) // the client gets what came before, then the end
        return next()
      }
      next(null, chunk)
    },
  })
}

t.test("pruned past the cursor: onReset 'snapshot' takes a new snapshot and drops the old state; without it, a ResetError", async (t) => {
  const server = await startTestServer(t)
  const [a, b] = await Promise.all([newUser(server), newUser(server)])
  const writes = new AckedWrites()
  for (let i = 0; i < 10; i++) await writes.put(a, `/pub/r/${i}`, `v${i}`)
  const store = new MemoryCursorStore()
  const first = new Consumer()
  const f1 = follow({ url: server.url, filters: ['*/pub/r/*'], cursorStore: store, snapshot: first })
  const run1 = consume(t, f1, first)
  const seen = await writes.put(b, '/pub/r/b', 'b')
  await until(() => first.top >= seen.seq, 'an event after the snapshot', 30_000, () => String(first.top))
  await f1.close()
  await run1
  t.equal(store.id, idOf(seen.seq))

  // while it is away, files go and come, and the log is pruned past its cursor
  for (let i = 0; i < 5; i++) await writes.delete(a, `/pub/r/${i}`)
  for (let i = 0; i < 3; i++) await writes.put(b, `/pub/r/new${i}`, `n${i}`)
  const head = writes.events.at(-1)!.seq
  await server.ctx.events.prune(head - 1)

  const strict = follow({ url: server.url, filters: ['*/pub/r/*'], cursorStore: new MemoryCursorStore(store.id), snapshot: new Consumer() })
  const err = await strict.next().then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof ResetError, 'without onReset a reset still ends the iterator')
  t.throws(() => follow({ url: server.url, cursorStore: 'memory', onReset: 'snapshot' }), TypeError, "onReset: 'snapshot' needs a handler")

  const second = first.copy()
  const f2 = follow({ url: server.url, filters: ['*/pub/r/*'], cursorStore: store, snapshot: second, onReset: 'snapshot' })
  const run2 = consume(t, f2, second)
  await until(() => second.synced !== undefined || second.error !== undefined, 'synced', 30_000, () => String(second.error))
  t.same(second.synced!.files, filesAt(writes.events, head, '/pub/r/'), 'at synced, exactly the files: none of those deleted while it was away')
  t.same(second.starts, [{ cause: 'reset', reset: { requested: String(seen.seq), floor: String(head - 1) } }], 'told to drop its state, and why')
  const after = await writes.put(a, '/pub/r/after', 'after')
  await until(() => second.top >= after.seq, 'an event after the new snapshot', 30_000, () => String(second.top))
  t.same(second.files(), await storedFiles([a, b], '/pub/r/'), 'then live: the files the storage API lists')
  await until(() => store.id === idOf(after.seq), 'the cursor saved', 10_000, () => store.id)
  await f2.close()
  await run2
  t.equal(second.error, undefined)
})

t.test('a snapshot resumed after the log lost what it needed starts again, and the consumer drops what it held', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  const writes = new AckedWrites()
  for (let i = 0; i < 40; i++) await writes.put(a, `/pub/q/${String(i).padStart(2, '0')}`, `v${i}`)
  const at = writes.events.at(-1)!.seq
  const store = new MemoryCursorStore()
  const first = new Consumer()
  const stop = new AbortController()
  first.afterFile = () => first.handed.length === 10 && stop.abort()
  await consume(t, follow({ url: server.url, filters: [`${a.user}/pub/q/*`], cursorStore: store, snapshot: first, signal: stop.signal }), first)
  t.match(store.id, /^~/, 'stopped inside the snapshot')

  // files it already holds are deleted, and the log no longer holds the events after its position
  for (let i = 0; i < 5; i++) await writes.delete(a, `/pub/q/0${i}`)
  await writes.put(a, '/pub/q/new', 'new')
  const head = writes.events.at(-1)!.seq
  await server.ctx.events.prune(head)

  const second = first.copy()
  const f = follow({ url: server.url, filters: [`${a.user}/pub/q/*`], cursorStore: store, snapshot: second })
  const running = consume(t, f, second)
  await until(() => second.synced !== undefined || second.error !== undefined, 'synced', 30_000, () => String(second.error))
  t.same(second.synced!.files, filesAt(writes.events, head, '/pub/q/'), 'at synced, exactly the files: none of those deleted meanwhile')
  t.match(second.starts, [{ cause: 'restart', reset: { floor: String(head) } }], 'the homeserver restarted the snapshot; the consumer was told')
  t.ok(BigInt(second.starts[0]?.reset?.requested ?? -1) >= BigInt(at), 'after the position it was taken at')
  t.same(second.files(), await storedFiles([a], '/pub/q/'))
  await f.close()
  await running
  t.equal(second.error, undefined)
})
