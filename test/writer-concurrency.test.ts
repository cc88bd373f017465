import t from 'tap'
import { blake3 } from '@noble/hashes/blake3.js'
import { join } from 'node:path'
import { headOf, newUser, startTestServer, tempDir } from './helpers/server.js'
import { AckedWrites } from './helpers/acked-writes.js'
import { eventLine } from './helpers/event-checks.js'
import { readSubscribe } from './helpers/sse.js'
import { aroundCommit } from './helpers/store-wrap.js'
import { LevelStore } from '../src/kv/level/store.js'
import { WriteRefused } from '../src/kv/store.js'
import { MAX_QUEUED, Writer, fileCost } from '../src/events/writer.js'
import type { HearthError } from '../src/errors.js'
import { EventLog } from '../src/events/event-log.js'
import type { HomeserverClient } from 'hearth-homeserver-client'
import type { HearthEvent } from '../src/events/event.js'

/**
 * The write path under contention (SPEC §3, §5): many PUTs and DELETEs at once, on paths that
 * overlap and clash, from several users. Every success must be exactly one event, seqs must
 * be 1..N without a gap, and replaying the log must rebuild exactly what the server stores.
 */

const REQUESTS = 200
const USERS = 4
// Overlapping on purpose: 'a' against 'a/b' and 'a/b/c' makes file/directory clashes (409).
const PATHS = ['/pub/w/a', '/pub/w/a/b', '/pub/w/a/b/c', '/pub/w/b', '/pub/w/c/d', '/pub/w/c', '/pub/x', '/priv/p/q', '/priv/p']

interface Op {
  i: number
  client: HomeserverClient
  type: 'PUT' | 'DEL'
  path: string
  body: string
  status?: number
}

const hash = (body: string) => Buffer.from(blake3(Buffer.from(body))).toString('base64')

type Logged = Pick<HearthEvent, 'seq' | 'type' | 'user' | 'path' | 'contentHash'>

/** Applies events in seq order, checking each one could happen where it stands. */
function replay(events: Logged[], problems: string[]): Map<string, string> {
  const files = new Map<string, string>()
  for (const ev of events) {
    const key = ev.user + ev.path
    if (ev.type === 'DEL') {
      if (!files.delete(key)) problems.push(`seq ${ev.seq}: DEL of absent ${ev.path}`)
      continue
    }
    for (const other of files.keys()) {
      if (other.startsWith(key + '/') || key.startsWith(other + '/')) problems.push(`seq ${ev.seq}: PUT ${ev.path} clashes with ${other}`)
    }
    files.set(key, ev.contentHash!)
  }
  return files
}

t.test(`${REQUESTS} concurrent PUTs and DELETEs: one event per success, gapless seqs, a replayable log`, async (t) => {
  const server = await startTestServer(t)
  const clients = await Promise.all(Array.from({ length: USERS }, () => newUser(server)))
  // A deterministic mix, so a failure reproduces: ~60% PUTs, paths and users interleaved.
  let seed = 7
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), (seed >>> 8) % n)
  const ops: Op[] = Array.from({ length: REQUESTS }, (_, i) => ({
    i,
    client: clients[rand(USERS)]!,
    type: rand(10) < 6 ? 'PUT' : 'DEL',
    path: PATHS[rand(PATHS.length)]!,
    body: `request ${i}`,
  }))

  // Some files first, so that DELETEs have something to find and PUTs something to clash with.
  const seeded = new AckedWrites()
  for (const c of clients) for (const p of ['/pub/w/a/b/c', '/pub/w/c/d', '/pub/x', '/priv/p/q']) await seeded.put(c, p, `seed ${c.user}${p}`)
  const before = seeded.events

  await Promise.all(ops.map(async (op) => {
    const res = await op.client.request(op.type === 'PUT' ? 'PUT' : 'DELETE', op.path, op.type === 'PUT' ? op.body : undefined)
    await res.arrayBuffer()
    op.status = res.status
  }))

  const ok = ops.filter((op) => op.status === (op.type === 'PUT' ? 201 : 204))
  const statuses = new Map<string, number>()
  for (const op of ops) statuses.set(`${op.type} ${op.status}`, (statuses.get(`${op.type} ${op.status}`) ?? 0) + 1)
  t.comment(`outcomes: ${JSON.stringify(Object.fromEntries(statuses))}`)
  const unexpected = ops.filter((op) => !ok.includes(op) && !(op.type === 'PUT' ? [409] : [404]).includes(op.status!))
  t.same(unexpected.map((op) => `${op.type} ${op.path} → ${op.status}`), [], 'refusals are only 409 (PUT clash) and 404 (DELETE absent)')
  t.ok(ok.some((op) => op.type === 'PUT') && ok.some((op) => op.type === 'DEL'), 'both kinds succeeded')
  t.ok(ops.some((op) => op.status === 409), 'the mix made clashes')

  // The whole log, read as its users may: each one's stream, with their session for /priv/.
  const all: Logged[] = []
  for (const c of clients) {
    const own = await readSubscribe(`${server.url}/subscribe?filter=${c.user}/*&lastSeq=0&live=false`, c.headers())
    all.push(...own.events.map((ev) => ({ ...ev, seq: Number(ev.seq) })))
  }
  all.sort((a, b) => a.seq - b.seq)
  const events = all.slice(before.length)
  t.equal(await headOf(server.url), before.length + ok.length, 'head grew by the number of successful requests')
  t.same(all.map((ev) => ev.seq), Array.from({ length: before.length + ok.length }, (_, i) => i + 1), 'seqs are exactly 1..N: one event per successful request')
  t.same(all.slice(0, before.length).map(eventLine), before.map(eventLine), 'the seed writes first, as acknowledged')

  // Each PUT event carries the hash of the one body that made it; DELETEs match by user and path.
  const byHash = new Map(ok.filter((op) => op.type === 'PUT').map((op) => [hash(op.body), op]))
  t.equal(byHash.size, ok.filter((op) => op.type === 'PUT').length)
  const puts = events.filter((ev) => ev.type === 'PUT')
  t.same(puts.map((ev) => byHash.get(ev.contentHash!)).map((op) => op && `${op.client.user}${op.path}`), puts.map((ev) => ev.user + ev.path), 'every PUT event is one successful PUT')
  t.equal(new Set(puts.map((ev) => ev.contentHash)).size, byHash.size, 'and every successful PUT has its event')
  const delKeys = (list: { user: string; path: string }[]) => list.map((d) => d.user + d.path).sort()
  t.same(delKeys(events.filter((ev) => ev.type === 'DEL')), delKeys(ok.filter((op) => op.type === 'DEL').map((op) => ({ user: op.client.user, path: op.path }))), 'DEL events match successful DELETEs')

  const problems: string[] = []
  const replayed = replay(all, problems)
  t.same(problems, [], 'every event is valid against the state before it')

  // The replayed state is what the server stores: listings and ETags agree.
  const stored = new Map<string, string>()
  for (const c of clients) {
    for (const dir of ['/pub/', '/priv/']) {
      for (const url of await c.list(dir, 'limit=1000')) {
        const path = url.slice(`pubky://${c.user}`.length)
        const res = await c.request('HEAD', path)
        stored.set(c.user + path, res.headers.get('etag')!.slice(1, -1))
      }
    }
  }
  t.same(new Map([...stored].sort()), new Map([...replayed].sort()), 'replaying the log gives exactly the stored files and contents')

  // The public text feed, paged, tells the same story for /pub/ as the streams checked above.
  const lines: string[] = []
  let cursor = 0
  for (;;) {
    const text = await (await fetch(`${server.url}/events/?cursor=${cursor}&limit=17`)).text()
    if (text === '') break
    const page = text.split('\n')
    cursor = Number(page.pop()!.replace('cursor: ', ''))
    lines.push(...page)
  }
  const expected = all.filter((ev) => ev.path.startsWith('/pub/')).map((ev) => `${ev.type} pubky://${ev.user}${ev.path}`)
  t.same(lines, expected, 'GET /events/ pages list every public event once, in seq order')
  t.equal(cursor, all.filter((ev) => ev.path.startsWith('/pub/')).at(-1)!.seq)
})

t.test('a second wave after the first continues the same sequence', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  const wave = async (n: number, offset: number) =>
    Promise.all(Array.from({ length: n }, (_, i) => (i % 2 ? alice : bob).request('PUT', `/pub/wave/${(offset + i) % 13}`, String(offset + i)).then((r) => r.status)))
  const first = await wave(50, 0)
  const second = await wave(50, 50)
  t.ok([...first, ...second].every((s) => s === 201), 'distinct files per user never clash')
  const { events } = await readSubscribe(`${server.url}/subscribe?lastSeq=0&live=false`)
  t.same(events.map((ev) => Number(ev.seq)), Array.from({ length: 100 }, (_, i) => i + 1), 'one event per acknowledged write')
  t.ok(events.every((ev, i) => i === 0 || ev.ts >= events[i - 1]!.ts), 'timestamps never go backwards along the log')
})

t.test('a commit that fails takes its seqs back: the next commit continues without a gap', async (t) => {
  const dir = tempDir(t)
  const { store: inner } = await LevelStore.open(dir)
  t.teardown(() => inner.close())
  // The real engine, made to fail chosen commits the way a full disk would: the group's work
  // runs, then the commit fails before anything lands.
  let failing = false
  const store = aroundCommit(inner, async (tx, work) => {
    const out = await work(tx)
    if (failing) throw new Error('ENOSPC: no space left on device')
    return out
  })
  const log = await EventLog.open(store)
  const writer = new Writer(store, log, 1024 ** 3)
  t.equal(await inner.createUser('u', 0), 'created')
  const announced: number[] = []
  log.onAppend((evs) => announced.push(...evs.map((ev) => ev.seq)))
  const put = (path: string) => {
    const bytes = Buffer.from(path)
    return writer.submit({ type: 'PUT', user: 'u', path, content: { size: bytes.length, hash: hash(path), type: 'text/plain', inline: bytes } })
  }

  t.equal((await put('/pub/1')).seq, 1)
  failing = true
  const failed = await Promise.allSettled([put('/pub/2'), put('/pub/3'), put('/pub/4')])
  t.ok(failed.every((r) => r.status === 'rejected'), 'every write of the failed commit is refused')
  failing = false
  const after = await Promise.all([put('/pub/5'), put('/pub/6')])
  t.same(after.map((ev) => ev.seq), [2, 3], 'the seqs of the failed commit are used by the next one')
  t.equal(log.head, 3)
  t.same(((await log.read(0, 100)).events).map((ev) => `${ev.seq} ${ev.path}`), ['1 /pub/1', '2 /pub/5', '3 /pub/6'])
  t.same(announced, [1, 2, 3], 'nothing of the failed commit was announced')
  t.equal(await inner.fileMeta('u', '/pub/2'), undefined, 'nor stored')
  const cost = ['/pub/1', '/pub/5', '/pub/6'].reduce((sum, p) => sum + fileCost(p, p.length), 0)
  t.equal((await inner.user('u'))!.usage, cost, 'usage counts only committed files')
})

t.test('a write submitted just as a commit finishes is not stranded', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const submit = (path: string) =>
    server.ctx.writer.submit({ type: 'PUT', user: alice.user, path, content: { size: 1, hash: hash('x'), type: 'text/plain', inline: Buffer.from('x') } })
  // Promise.all resumes its caller a few microtasks after the commit resolves it: exactly when
  // the writer is between its last queue check and going idle.
  const run = (async () => {
    for (let i = 0; i < 50; i++) await Promise.all([submit(`/pub/a/${i}`), submit(`/pub/b/${i}`)])
    return 'settled' as const
  })()
  const stuck = new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), 10_000).unref())
  t.equal(await Promise.race([run, stuck]), 'settled', 'every write settles')
  t.equal(await headOf(server.url), 100)
})

t.test('a log read that fails right after a commit neither ends the process nor loses the announcement', async (t) => {
  const dir = tempDir(t)
  const { store: inner } = await LevelStore.open(dir)
  t.teardown(() => inner.close())
  // Reads of the log fail while `failing` counts down: the database dropping just after a
  // COMMIT, while this process is behind commits made elsewhere.
  let failing = 0
  const store = new Proxy(inner, {
    get: (target, prop) => {
      if (prop === 'readLog') {
        return (...args: Parameters<typeof inner.readLog>) => (failing-- > 0 ? Promise.reject(new Error('read ECONNRESET')) : inner.readLog(...args))
      }
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  const log = await EventLog.open(store)
  t.teardown(() => log.close())
  const writer = new Writer(store, log, 1024 ** 3)
  await inner.createUser('u', 0)
  const announced: number[] = []
  log.onAppend((evs) => announced.push(...evs.map((ev) => ev.seq)))
  const put = (path: string) => {
    const bytes = Buffer.from(path)
    return writer.submit({ type: 'PUT', user: 'u', path, content: { size: bytes.length, hash: hash(path), type: 'text/plain', inline: bytes } })
  }
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown) => unhandled.push(err)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => process.off('unhandledRejection', onUnhandled))

  t.equal((await put('/pub/1')).seq, 1)
  // "another instance" commits seq 2; this process has not heard of it yet
  await inner.commit(async (tx) => tx.append([{ seq: 2, type: 'DEL', user: 'u', path: '/pub/elsewhere', ts: 1 }]))
  failing = 2
  const third = await put('/pub/3')
  t.equal(third.seq, 3, 'the write is acknowledged once its event is announced')
  t.same(announced, [1, 2, 3], 'the commit made elsewhere was read and announced first, in order')
  t.equal(failing, -1, 'after the reads that failed were tried again')
  t.same(unhandled, [], 'nothing escaped as an unhandled rejection')
})

t.test("a write the engine refuses fails alone: the other writes of its group land", async (t) => {
  const dir = tempDir(t)
  const { store: inner } = await LevelStore.open(dir)
  t.teardown(() => inner.close())
  // The engine refuses any commit that holds /pub/bad, as PostgreSQL refuses an index entry
  // too large; it stays available for everything else.
  const groups: number[] = []
  const store = aroundCommit(inner, async (tx, work) => {
    const out = (await work(tx)) as { ev: HearthEvent }[]
    if (!out.some((d) => d.ev.path === '/pub/bad')) return out as never
    groups.push(out.length)
    throw new WriteRefused('index row size exceeds maximum')
    return out as never
  })
  const log = await EventLog.open(store)
  const writer = new Writer(store, log, 1024 ** 3)
  await inner.createUser('u', 0)
  const put = (path: string) => {
    const bytes = Buffer.from(path)
    return writer.submit({ type: 'PUT', user: 'u', path, content: { size: bytes.length, hash: hash(path), type: 'text/plain', inline: bytes } })
  }
  await put('/pub/first')
  // submitted in one tick: they share a group
  const results = await Promise.allSettled(['/pub/a', '/pub/bad', '/pub/b', '/pub/c'].map(put))
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'], 'only the refused write fails')
  t.ok(groups[0]! > 1, `the refused write came in a group of ${groups[0]}`)
  t.same(groups.slice(1), [1], 'and was tried again alone')
  t.same(((await log.read(0, 100)).events).map((ev) => ev.path), ['/pub/first', '/pub/a', '/pub/b', '/pub/c'], 'gapless, the others in order')
})

t.test('the write queue is bounded: past it a write is refused at once with 503, and the queue drains', async (t) => {
  const dir = tempDir(t)
  const { store: inner } = await LevelStore.open(dir)
  t.teardown(() => inner.close())
  // a store that stalls (a lock held from outside) until the test lets it go
  let release = () => {}
  const stalled = new Promise<void>((r) => (release = r))
  const store = aroundCommit(inner, async (tx, work) => {
    await stalled
    return work(tx)
  })
  const log = await EventLog.open(store)
  const writer = new Writer(store, log, 1024 ** 3)
  await inner.createUser('u', 0)
  const put = (path: string) => writer.submit({ type: 'PUT', user: 'u', path, content: { size: 1, hash: hash('x'), type: 'text/plain', inline: Buffer.from('x') } })
  const first = put('/pub/first') // taken at once into the stalled commit
  const queued = Array.from({ length: MAX_QUEUED }, (_, i) => put(`/pub/q/${i}`))
  const refused = await put('/pub/one-too-many').then(() => undefined, (err: HearthError) => err)
  t.equal(refused?.status, 503, 'one more is refused at once, with 503')
  release()
  const done = await Promise.all([first, ...queued])
  t.equal(done.length, MAX_QUEUED + 1, 'every queued write lands once the store moves')
  t.equal((await put('/pub/after')).seq, MAX_QUEUED + 2, 'and the queue takes writes again')
})
