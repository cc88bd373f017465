import t from 'tap'
import { startTestServer, newUser, tempDir } from './helpers/server.js'
import { Follower, RawStream, SocketStream, seqOf, writeMany } from './helpers/feed.js'
import { readSubscribe } from './helpers/sse.js'
import type { SseFrame } from './helpers/sse-frames.js'
import { seqOfId } from 'hearth-homeserver-client/id'
import { AckedWrites } from './helpers/acked-writes.js'
import type { Server } from '../src/server.js'

async function info(server: Server): Promise<{ head: number; floor: number }> {
  const body = (await (await fetch(`${server.url}/info`)).json()) as { events: { head: string; floor: string } }
  return { head: Number(body.events.head), floor: Number(body.events.floor) }
}

/** Waits for the background sweep (every second) to bring the floor to `floor`. */
async function floorReaches(server: Server, floor: number): Promise<void> {
  const deadline = Date.now() + 20_000
  while ((await info(server)).floor < floor) {
    if (Date.now() > deadline) throw new Error(`the floor stayed at ${(await info(server)).floor}, below ${floor}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  await server.ctx.retention!.sweep() // the floor moves first; wait for the deletes behind it
}

/** Events still stored: in the global log, or in the per-user index of `user`. */
async function count(server: Server, user?: string): Promise<number> {
  const { store } = server.ctx
  const head = await store.head()
  return (user === undefined ? (await store.readLog(0, head, 1e9)).events : (await store.readUserLog(user, 0, head, 1e9)).events).length
}

t.test('EVENT_RETENTION as a count keeps the newest events', async (t) => {
  const dir = tempDir(t)
  const server = await startTestServer(t, { EVENT_RETENTION: '10', DATA_DIR: dir })
  const user = await newUser(server)
  // one at a time, so the seq of each write is known: concurrent PUTs commit in any order
  const written = new AckedWrites((await info(server)).head)
  for (let i = 0; i < 30; i++) await written.put(user, `/pub/r/${i}`, `v${i}`)
  const { head } = await info(server)
  t.equal(head, written.events.at(-1)!.seq)
  await floorReaches(server, head - 9)
  t.same(await info(server), { head, floor: head - 9 }, '/info shows the floor')
  t.equal(await count(server), 10, 'pruned events are gone from the log')
  t.equal(await count(server, user.user), 10, 'and from the per-user index')

  const kept = written.events.filter((ev) => ev.seq >= head - 9).map((ev) => `PUT pubky://${ev.user}${ev.path}`)
  const text = await (await fetch(`${server.url}/events/?cursor=0`)).text()
  t.same(text.split('\n'), [...kept, `cursor: ${head}`], '/events/ from 0 starts at the floor')

  // A cursor below the floor: `event: reset`, then the events from the floor.
  const s = await RawStream.open(`${server.url}/subscribe?lastSeq=3&live=false`)
  const frames = await s.all()
  t.same(frames[1], { raw: `event: reset\ndata: {"requested":"3","floor":"21"}`, event: 'reset', data: '{"requested":"3","floor":"21"}' })
  t.same(s.events().map(seqOf), Array.from({ length: 10 }, (_, i) => 21 + i))
  const atFloor = await RawStream.open(`${server.url}/subscribe?lastSeq=20&live=false`)
  await atFloor.all()
  t.notOk(atFloor.frames.some((f) => f.event === 'reset'), 'a cursor just below the floor needs no reset')
  t.equal(atFloor.events().length, 10)

  // eventsource hands the reset to the app as its own event type
  const f = new Follower(`${server.url}/subscribe?lastSeq=0`)
  t.teardown(() => f.close())
  await f.until(() => f.events.length === 11)
  t.equal(f.events[0]!.type, 'reset')
  t.same(JSON.parse(f.events[0]!.data as string), { requested: '0', floor: '21' })
  t.same(f.seqs(), Array.from({ length: 10 }, (_, i) => 21 + i))
  f.close()

  // /events-stream has no reset event: it simply starts at the floor
  const upstream = await (await fetch(`${server.url}/events-stream?user=${user.user}:2`)).text()
  t.equal(upstream.match(/^event: /gm)?.length, 10)

  // The floor survives a restart, and pruning goes on after it.
  await server.close()
  const again = await startTestServer(t, { EVENT_RETENTION: '10', DATA_DIR: dir })
  t.same(await info(again), { head, floor: head - 9 })
  const back = new (user.constructor as typeof import('hearth-homeserver-client').HomeserverClient)(again.url, user.keypair, user.session)
  await writeMany(back, 5, (i) => `/pub/again/${i}`)
  await floorReaches(again, head + 5 - 9)
  t.same(await info(again), { head: head + 5, floor: head - 4 })
})

t.test('EVENT_RETENTION as a duration drops events older than it', async (t) => {
  const server = await startTestServer(t, { EVENT_RETENTION: '1s' })
  const user = await newUser(server)
  await writeMany(user, 5, (i) => `/pub/old/${i}`)
  const { head } = await info(server)
  await floorReaches(server, head + 1)
  t.same(await info(server), { head, floor: head + 1 }, 'everything older than a second is gone')
  const s = await RawStream.open(`${server.url}/subscribe?lastSeq=0&live=false`)
  await s.all()
  t.same(s.frames.map((x) => x.event ?? x.raw), ['retry: 2000', 'reset'])
  t.same(JSON.parse(s.frames[1]!.data!), { requested: '0', floor: String(head + 1) })
  const future = await fetch(`${server.url}/subscribe?lastSeq=${head + 1}`)
  t.equal(future.status, 400, 'the head still bounds cursors')
  await future.body?.cancel()
})

t.test('a stalled subscriber overtaken by pruning gets a reset, then the rest without a gap', async (t) => {
  const EVENTS = 2500
  const server = await startTestServer(t, { EVENT_RETENTION: '100' })
  const user = await newUser(server)
  const frames: SseFrame[] = []
  const start = (await info(server)).head
  const stalled = await SocketStream.open(server.url, `/subscribe?filter=${user.user}/*`, (f) => frames.push(f))
  t.teardown(() => stalled.close())
  stalled.socket.pause()
  // ~4 KiB frames: 2,500 of them are more than the kernel buffers between the two ends
  const long = Array.from({ length: 8 }, (_, i) => `${i}`.repeat(240)).join('/')
  await writeMany(user, EVENTS, (i) => `/pub/${long}/${i}`, 32)
  const head = start + EVENTS // every write was acknowledged, and each is one event
  await floorReaches(server, head - 99)
  stalled.socket.resume()
  await stalled.until(() => frames.some((f) => f.event === 'PUT' && Number(seqOfId(f.id!)) === head))

  const reset = frames.findIndex((f) => f.event === 'reset')
  t.ok(reset > 0, 'a reset frame came')
  const before = frames.slice(0, reset).filter((f) => f.event === 'PUT').map(seqOf)
  const after = frames.slice(reset).filter((f) => f.event === 'PUT').map(seqOf)
  const { requested, floor } = JSON.parse(frames[reset]!.data!) as { requested: string; floor: string }
  t.same(before, Array.from({ length: before.length }, (_, i) => start + 1 + i), 'consecutive up to the reset')
  t.equal(Number(requested), before.at(-1) ?? start, 'requested: the last event it had')
  t.ok(Number(floor) > Number(requested) + 1, 'the floor had passed it')
  t.same(after, Array.from({ length: head - Number(floor) + 1 }, (_, i) => Number(floor) + i), 'from the floor to the head, consecutive')
  const kept = await readSubscribe(`${server.url}/subscribe?lastSeq=0&live=false`)
  t.same(kept.events.map((ev) => Number(ev.seq)), Array.from({ length: 100 }, (_, i) => head - 99 + i), 'the log keeps the newest 100 acknowledged writes')
})
