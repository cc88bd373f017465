import t from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  FileCursorStore, follow, FollowHttpError, FutureCursorError, idOf, MemoryCursorStore, ResetError,
  type FollowEvent, type Follower, type FollowState, type ResetInfo,
} from 'hearth-homeserver-client'
import type { HomeserverClient } from 'hearth-homeserver-client'
import { defaultCursorFile } from 'hearth-homeserver-client/follow'
import { newUser, startTestServer, tempDir } from './helpers/server.js'
import { TcpProxy } from './helpers/tcp-proxy.js'
import { until } from './helpers/until.js'
import { AckedWrites, SentPuts } from './helpers/acked-writes.js'
import { disorder, eventLine } from './helpers/event-checks.js'

const fast = { baseMs: 50, maxMs: 500 }

/** The next `n` events, leaving the follower open. */
async function take(f: Follower, n: number, ms = 30_000): Promise<FollowEvent[]> {
  const out: FollowEvent[] = []
  const deadline = Date.now() + ms
  while (out.length < n) {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`only ${out.length} of ${n} events within ${ms} ms`)), Math.max(0, deadline - Date.now()))
    })
    const r = await Promise.race([f.next(), late]).finally(() => clearTimeout(timer))
    if (r.done) throw new Error(`the follower ended after ${out.length} of ${n} events`)
    out.push(r.value)
  }
  return out
}

/** Resolves when the follower reports `state`. */
function reaches(states: FollowState[], state: FollowState): { onState: (s: FollowState) => void; reached: Promise<void> } {
  let resolve!: () => void
  const reached = new Promise<void>((r) => (resolve = r))
  return {
    onState: (s) => {
      states.push(s)
      if (s === state) resolve()
    },
    reached,
  }
}

async function writeSome(client: HomeserverClient, n: number, dir = '/pub/app/'): Promise<void> {
  for (let i = 0; i < n; i++) await client.put(`${dir}f${i}.txt`, `content ${i}`)
}

t.test('from start: every public event once, in order, typed, with state and lag', async (t) => {
  const server = await startTestServer(t)
  const [a, b] = [await newUser(server), await newUser(server)]
  await a.put('/priv/secret.txt', 'not for feeds')
  await a.put('/pub/app/one.txt', 'hello')
  await b.put('/pub/app/two.txt', 'hello world')
  await a.delete('/pub/app/one.txt')
  await b.put('/pub/other/three.txt', '123')
  const head = server.ctx.events.head
  t.equal(head, 5)
  const states: FollowState[] = []
  const f = follow({ cursorStore: 'memory', url: server.url, from: 'start', ack: 'explicit', onState: (s) => states.push(s) })
  t.equal(f.state, 'connecting')
  const events = await take(f, 4)
  t.same(events.map((e) => [e.seq, e.type, e.user, e.path]), [
    ['2', 'PUT', a.user, '/pub/app/one.txt'],
    ['3', 'PUT', b.user, '/pub/app/two.txt'],
    ['4', 'DEL', a.user, '/pub/app/one.txt'],
    ['5', 'PUT', b.user, '/pub/other/three.txt'],
  ])
  for (const e of events) {
    t.equal(e.id, idOf(BigInt(e.seq)))
    t.equal(e.uri, `pubky://${e.user}${e.path}`)
    t.type(e.ts, 'number')
  }
  t.equal(events[1]!.size, 11)
  t.match(events[1]!.contentHash, /^[A-Za-z0-9+/]{43}=$/)
  t.equal(events[2]!.size, undefined, 'DEL has no size')
  t.equal(f.lag, 5, 'nothing acked yet: the whole log is ahead')
  for (const e of events) e.ack()
  t.equal(f.cursor, idOf(5n))
  t.equal(f.lag, 0)
  t.same(states, ['catching-up', 'live'])
  await f.close()
  t.equal(f.state, 'closed')
})

t.test('live: events written after the follower is live arrive; from now skips the past', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 3, '/pub/old/')
  const states: FollowState[] = []
  const { onState, reached } = reaches(states, 'live')
  const f = follow({ cursorStore: 'memory', url: server.url, from: 'now', filters: [`${a.user}/pub/new/*`], onState })
  const first = f.next()
  await reached
  t.equal(f.cursor, idOf(3n), 'from now starts at the head')
  await writeSome(a, 2, '/pub/old/')
  await writeSome(a, 3, '/pub/new/')
  const got = [(await first).value as FollowEvent, ...(await take(f, 2))]
  t.same(got.map((e) => e.path), ['/pub/new/f0.txt', '/pub/new/f1.txt', '/pub/new/f2.txt'])
  t.same(got.map((e) => e.seq), ['6', '7', '8'])
  await f.return()
})

t.test('from now saves its starting point, so a restart misses nothing written in between', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 2)
  const store = new MemoryCursorStore()
  const { onState, reached } = reaches([], 'live')
  const f = follow({ url: server.url, from: 'now', cursorStore: store, onState })
  void f.next().catch(() => {})
  await reached
  await f.close()
  t.equal(store.id, idOf(2n))
  await a.put('/pub/app/later.txt', 'x')
  const g = follow({ url: server.url, from: 'now', cursorStore: store })
  const [e] = await take(g, 1)
  t.equal(e!.path, '/pub/app/later.txt', 'the stored cursor wins over from')
  await g.close()
})

t.test('explicit acks: the cursor moves over acked events only; unacked ones come again', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 6)
  const store = new MemoryCursorStore()
  const f = follow({ url: server.url, from: 'start', ack: 'explicit', cursorStore: store })
  const [e1, e2, e3, e4, e5] = await take(f, 5)
  e1!.ack()
  e2!.ack()
  t.equal(f.cursor, e2!.id)
  e4!.ack()
  t.equal(f.cursor, e2!.id, 'an ack out of order waits for the earlier events')
  e3!.ack()
  t.equal(f.cursor, e4!.id, 'and takes effect once they are acked')
  t.equal(e5!.seq, '5')
  await f.close()
  e5!.ack()
  t.equal(store.id, e4!.id, 'closing saved the acked position; acks after close do nothing')

  const g = follow({ url: server.url, from: 'start', ack: 'explicit', cursorStore: store })
  const again = await take(g, 2)
  t.same(again.map((e) => e.seq), ['5', '6'], 'the unacked event is delivered again, then the rest')
  await g.close()
})

t.test('auto acks: an event counts as processed when the loop asks for the next one', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 4)
  const store = new MemoryCursorStore()
  const seen: string[] = []
  for await (const e of follow({ url: server.url, from: 'start', cursorStore: store })) {
    seen.push(e.seq)
    if (seen.length === 3) break // the third was not acked: break does not ack
  }
  t.same(seen, ['1', '2', '3'])
  t.equal(store.id, idOf(2n))
  const g = follow({ url: server.url, cursorStore: store })
  t.same((await take(g, 2)).map((e) => e.seq), ['3', '4'])
  await g.close()
})

t.test('scanned positions count as progress once every earlier event is acked', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await a.put('/pub/wanted/x', '1')
  await writeSome(a, 5, '/pub/noise/')
  await a.put('/pub/wanted/y', '2')
  await writeSome(a, 5, '/pub/noise/')
  const store = new MemoryCursorStore()
  const { onState, reached } = reaches([], 'live')
  const f = follow({ url: server.url, from: 'start', ack: 'explicit', cursorStore: store, filters: [`${a.user}/pub/wanted/*`], onState })
  const [x, y] = await take(f, 2)
  t.same([x!.seq, y!.seq], ['1', '7'])
  const waiting = f.next() // takes in the server's "scanned up to 12" and waits for more
  await reached
  t.equal(f.cursor, idOf(0n), 'the scanned position waits behind unacked events')
  x!.ack()
  t.equal(f.cursor, x!.id)
  y!.ack()
  t.equal(f.cursor, idOf(12n), 'once they are acked the cursor jumps to what was scanned')
  t.equal(f.lag, 0)
  await f.close()
  t.same(await waiting, { done: true, value: undefined })
  t.equal(store.id, idOf(12n))

  const g = follow({ cursorStore: 'memory', url: server.url, from: 'start', filters: [`${a.user}/pub/none/*`], onState: reaches([], 'live').onState })
  const idle = g.next()
  await until(() => g.state === 'live', 'the idle follower to be live', 20_000, () => g.state)
  t.equal(g.cursor, idOf(12n), 'a follower with no matches still advances to the head')
  await g.close()
  t.same(await idle, { done: true, value: undefined })
})

t.test('the file cursor store writes atomically and resumes across followers', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'cursor')
  const store = new FileCursorStore(path)
  t.equal(await store.load(), undefined)
  await store.save(idOf(41n))
  await store.save(idOf(42n))
  t.equal(await new FileCursorStore(path).load(), idOf(42n))
  t.same(readdirSync(dir), ['cursor'], 'no temporary file is left behind')

  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 3)
  await store.save(idOf(1n))
  const f = follow({ url: server.url, from: 'start', cursorStore: store })
  t.same((await take(f, 2)).map((e) => e.seq), ['2', '3'])
  const waiting = f.next() // acks 3, then waits for a fourth event
  await f.close()
  t.same(await waiting, { done: true, value: undefined })
  t.equal(await store.load(), idOf(3n))
})

t.test('by default the cursor lives in a file named after url and filters, so a restart resumes', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 3)
  const cwd = process.cwd()
  process.chdir(tempDir(t))
  t.teardown(() => process.chdir(cwd))
  const f = follow({ url: server.url, from: 'start' })
  t.same((await take(f, 2)).map((e) => e.seq), ['1', '2'])
  await f.close()
  const file = defaultCursorFile(server.url, [])
  t.same(readdirSync('.'), [file], 'one cursor file, in the working folder')
  const g = follow({ url: server.url, from: 'start' })
  t.same((await take(g, 1)).map((e) => e.seq), ['2'], 'resumes after the last acknowledged event')
  await g.close()
  t.not(defaultCursorFile(server.url, ['*/pub/a/*']), file, 'other filters, other file')
})

t.test('a cursor below the floor is a reset the consumer sees', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 10)
  await server.ctx.events.prune(6)
  t.equal(server.ctx.events.floor, 6)

  const f = follow({ cursorStore: 'memory', url: server.url, from: idOf(3n) })
  const err = await f.next().then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof ResetError, 'without onReset the iterator throws')
  t.match(err, { requested: '3', floor: '6' })
  t.equal(f.state, 'closed')
  t.same(await f.next(), { done: true, value: undefined }, 'and is closed afterwards')

  const resets: ResetInfo[] = []
  const store = new MemoryCursorStore('0')
  const g = follow({ url: server.url, cursorStore: store, onReset: (r) => void resets.push(r), ack: 'explicit' })
  const got = await take(g, 5)
  t.same(resets, [{ requested: '0', floor: '6' }], 'a stored cursor of 0 against a pruned log is a reset too')
  t.same(got.map((e) => e.seq), ['6', '7', '8', '9', '10'])
  t.equal(g.cursor, idOf(5n), 'a handled reset moves the cursor to just below the floor')
  await g.close()
  t.equal(store.id, idOf(5n))
})

t.test('a cursor past the head is a FutureCursorError', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 2)
  const f = follow({ cursorStore: 'memory', url: server.url, from: '9' })
  const err = await f.next().then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof FutureCursorError)
  t.match(err, { cursor: idOf(9n), head: '2' })
  t.throws(() => follow({ cursorStore: 'memory', url: server.url, from: 'yesterday' }), TypeError)
})

t.test('abort ends the iteration cleanly and saves the position', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  await writeSome(a, 3)
  const store = new MemoryCursorStore()
  const ac = new AbortController()
  const seen: string[] = []
  for await (const e of follow({ url: server.url, from: 'start', cursorStore: store, signal: ac.signal })) {
    seen.push(e.seq)
    if (seen.length === 3) setTimeout(() => ac.abort(), 50) // abort while the loop waits for more
  }
  t.same(seen, ['1', '2', '3'])
  t.equal(store.id, idOf(3n), 'the last event was acked when the loop asked for more')

  await a.put('/pub/app/f3.txt', 'four')
  const inBody = new AbortController()
  const file = join(tempDir(t), 'cursor')
  for await (const e of follow({ url: server.url, cursorStore: file, from: idOf(2n), signal: inBody.signal })) {
    seen.push(e.seq)
    inBody.abort() // while this event is processed: its body still finishes, so it is acked
  }
  t.same(seen, ['1', '2', '3', '3'], 'nothing is handed out after the abort')
  t.equal(await new FileCursorStore(file).load(), idOf(3n), 'a path is a file cursor store')
})

t.test('a homeserver restart under a live follower: it reconnects and gets everything exactly once, in order', async (t) => {
  // clients keep the proxy's address while the server restarts on another port
  const raw = { DATA_DIR: tempDir(t) }
  let server = await startTestServer(t, raw)
  const proxy = await TcpProxy.start(t, server.url)
  const users = [await newUser(proxy), await newUser(proxy)]
  const states: FollowState[] = []
  const f = follow({ cursorStore: 'memory', url: proxy.url, from: 'start', filters: ['*/pub/app/*'], backoff: fast, onState: (s) => states.push(s) })

  // Each write goes to a new path; one that meets the restart is not repeated, and may or may
  // not have landed: the server's files tell which did.
  const sent = new SentPuts()
  let writing = true
  const writers = users.map(async (u, w) => {
    for (let i = 0; writing; i++) {
      const ok = await sent.put(u, i % 3 === 0 ? `/pub/skip/${w}-${i}` : `/pub/app/${w}-${i}`, `w${w} i${i}`)
      if (!ok) await new Promise((r) => setTimeout(r, 20))
    }
  })
  const got: FollowEvent[] = []
  let lastSeq: bigint | undefined
  const reader = (async () => {
    for await (const e of f) {
      got.push(e)
      if (lastSeq !== undefined && BigInt(e.seq) >= lastSeq) break
    }
  })()

  await until(() => got.length >= 30, '30 events before the restart', 20_000, () => got.length)
  await server.close()
  const before = got.length
  server = await startTestServer(t, raw)
  proxy.target = server.url
  await until(() => got.length >= before + 30, '30 events after the restart', 20_000, () => got.length)
  writing = false
  await Promise.all(writers)
  // Only these writers write, so what landed holds seqs 1..n; one more write closes the run at n + 1.
  const landed = await sent.landed(server.url)
  const last = await new AckedWrites(landed.length).put(users[0]!, '/pub/app/last', 'last')
  lastSeq = BigInt(last.seq)
  // The reader may already hold the last event and wait for more.
  if (got.length > 0 && BigInt(got.at(-1)!.seq) >= lastSeq) await f.close()
  await reader

  t.ok(sent.acked().length >= 60, `writers kept writing (${sent.acked().length})`)
  t.equal(disorder(got), undefined, 'seqs only rise: nothing twice')
  t.equal(eventLine(got.at(-1)!), eventLine(last), 'up to the last write, at the seq after all that landed')
  const paths = (events: { user: string; path: string; contentHash?: string }[], user: string) =>
    events.filter((e) => e.user === user && e.path.startsWith('/pub/app/')).map((e) => `${e.path} ${e.contentHash}`)
  for (const u of users) {
    t.same(paths(got, u.user), paths([...landed, last], u.user), 'every write of each writer that landed, once, in the order written')
  }
  t.ok(states.filter((s) => s === 'connecting').length >= 1, `it reconnected: ${states.join(' ')}`)
  t.equal(states[states.length - 1], 'closed')
})

t.test('a 503 is retried, a silent server and a silent stream are dropped and reopened, a bad filter is final', async (t) => {
  // The real server behind a proxy that fails in the ways a network does: it answers 503,
  // then accepts connections and says nothing, then passes them to a stream that goes quiet.
  const server = await startTestServer(t)
  const proxy = await TcpProxy.start(t, server.url)
  const a = await newUser(server)
  proxy.mode = 'unavailable'
  const errors: string[] = []
  const resumedAfter: (string | null)[] = []
  const f = follow({
    cursorStore: 'memory', url: proxy.url, from: 'start', backoff: fast, idleTimeoutMs: 300,
    onRetry: ({ error }) => void errors.push(error.message),
    fetch: (input, init) => {
      const url = String(input)
      if (url.includes('/subscribe')) resumedAfter.push(new Headers(init?.headers).get('last-event-id'))
      return fetch(input, init)
    },
  })
  const first = f.next()
  await until(() => errors.some((e) => e.includes('HTTP 503')), 'a 503 to be retried', 10_000, () => errors)
  proxy.mode = 'silent'
  await until(() => errors.some((e) => e.includes('no answer within 300 ms')), 'a server that says nothing to be given up on', 10_000, () => errors)
  proxy.mode = 'pass'
  await until(() => errors.some((e) => e.includes('the stream sent nothing for 300 ms')), 'a quiet stream to be dropped', 10_000, () => errors)
  await a.put('/pub/x', 'x')
  const e = (await first).value as FollowEvent
  t.same([e.seq, e.type, e.user, e.path, e.size], ['1', 'PUT', a.user, '/pub/x', 1], 'then the event, from the real server')
  t.ok(resumedAfter.length >= 2, `${resumedAfter.length} streams opened`)
  t.same(new Set(resumedAfter), new Set([idOf(0n)]), 'each resuming after the same position')
  await f.close()

  const bad = follow({ cursorStore: 'memory', url: server.url, filters: ['not-a-filter'] })
  const err = await bad.next().then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof FollowHttpError, 'no retry for a request the server will always refuse')
  t.match(err, { status: 400, code: 'InvalidFilter' })
})
