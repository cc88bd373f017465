import t from 'tap'
import type { HearthEvent } from '../src/events/event.js'
import { startTestServer, newUser } from './helpers/server.js'
import { Follower, RawStream, idOf, logEvents, seqOf } from './helpers/feed.js'
import { EventFrames } from '../src/feed/frames.js'
import { encodeId } from '../src/events/id.js'

// One server for the whole file: the log grows as the tests below add to it, and each test
// derives what it expects from the log itself.
const server = await startTestServer(t, { KEEPALIVE_MS: '200' })
const a = await newUser(server)
const b = await newUser(server)
await a.put('/pub/x/a.txt', 'a')
await a.put('/pub/x/sub/b.txt', 'b')
await b.put('/pub/x/a.txt', 'b-a')
await a.put('/pub/y/c.txt', 'c')
await a.put('/priv/secret.txt', 'hidden')
await b.put('/pub/profile.json', '{"name":"b"}')
await a.put('/pub/profile.json', '{"name":"a"}')
await a.delete('/pub/y/c.txt')
await b.put('/pub/y/d.txt', 'd')
const history = await logEvents(server)
const isPublic = (ev: HearthEvent) => ev.path.startsWith('/pub/')

/** Replays with eventsource@4 up to the end of a `live=false` stream. */
async function replayed(query: string, path = '/subscribe'): Promise<Follower> {
  const f = new Follower(`${server.url}${path}?${query}`)
  await f.until(() => f.errors > 0) // the end of the response, before any reconnect
  f.close()
  return f
}

t.test('each filter form of the contract, replayed from lastSeq=0 with eventsource', async (t) => {
  const cases: [string, (ev: HearthEvent) => boolean][] = [
    [`filter=${a.user}/*`, (ev) => ev.user === a.user],
    [`filter=${a.user}/pub/x/*`, (ev) => ev.user === a.user && ev.path.startsWith('/pub/x/')],
    ['filter=*/pub/x/*', (ev) => ev.path.startsWith('/pub/x/')],
    ['filter=*', () => true],
    ['', () => true],
    [`filter=${a.user}/pub/profile.json`, (ev) => ev.user === a.user && ev.path === '/pub/profile.json'],
    [`filter=${a.user}/pub/x/a.txt&filter=${b.user}/pub/y/*`, (ev) => (ev.user === a.user && ev.path === '/pub/x/a.txt') || (ev.user === b.user && ev.path.startsWith('/pub/y/'))],
  ]
  for (const [filter, wanted] of cases) {
    const f = await replayed(`${filter}&lastSeq=0&live=false`)
    const expected = history.filter((ev) => isPublic(ev) && wanted(ev)).map((ev) => ev.seq)
    t.ok(expected.length > 0, `${filter || 'no filter'} has something to match`)
    t.same(f.seqs(), expected, filter || 'no filter')
  }
  const folder = await replayed('lastSeq=0&live=false', `/subscribe/${a.user}/pub/x/*`)
  t.same(folder.seqs(), history.filter((ev) => ev.user === a.user && ev.path.startsWith('/pub/x/')).map((ev) => ev.seq), 'GET /subscribe/<filter>')
  const every = await replayed('lastSeq=0&live=false', '/subscribe/*')
  t.same(every.seqs(), history.filter(isPublic).map((ev) => ev.seq), 'GET /subscribe/*')
})

t.test('event data: ids, JSON fields, DEL without content', async (t) => {
  const f = await replayed(`filter=${a.user}/pub/y/*&lastSeq=0&live=false`)
  t.equal(f.events.length, 2)
  const [put, del] = f.events.map((e) => JSON.parse(e.data as string))
  const [putEv, delEv] = history.filter((ev) => ev.user === a.user && ev.path === '/pub/y/c.txt')
  t.same(put, {
    id: idOf(putEv!.seq), seq: String(putEv!.seq), type: 'PUT', user: a.user, path: '/pub/y/c.txt',
    uri: `pubky://${a.user}/pub/y/c.txt`, contentHash: putEv!.contentHash, size: 1, ts: putEv!.ts,
  })
  t.same(del, { id: idOf(delEv!.seq), seq: String(delEv!.seq), type: 'DEL', user: a.user, path: '/pub/y/c.txt', uri: `pubky://${a.user}/pub/y/c.txt`, ts: delEv!.ts })
  t.equal(f.events[0]!.type, 'PUT')
  t.equal(f.events[1]!.type, 'DEL')
  t.equal(f.events[0]!.lastEventId, idOf(putEv!.seq))
})

t.test('live: only what matches, in order, from now', async (t) => {
  const f = new Follower(`${server.url}/subscribe?filter=${a.user}/pub/live/*`)
  t.teardown(() => f.close())
  await f.opened()
  await a.put('/pub/live/1', '1')
  await b.put('/pub/live/1', 'not mine')
  await a.put('/pub/elsewhere', 'no')
  await a.put('/pub/live/2', '2')
  await f.until(() => f.events.length >= 2)
  const log = await logEvents(server)
  const expected = log.filter((ev) => ev.user === a.user && ev.path.startsWith('/pub/live/')).map((ev) => ev.seq)
  t.same(f.seqs(), expected)
})

t.test('resume: Last-Event-ID, lastSeq and cursor, as id or decimal, exclusive', async (t) => {
  const k = history[3]!.seq
  const expected = history.filter((ev) => isPublic(ev) && ev.seq > k).map((ev) => ev.seq)
  for (const q of [`lastSeq=${idOf(k)}`, `lastSeq=${k}`, `cursor=${idOf(k)}`, `cursor=${k}`]) {
    const f = await replayed(`${q}&live=false`)
    const seqs = f.seqs().filter((s) => s <= history.at(-1)!.seq)
    t.same(seqs, expected, q)
  }
  const byHeader = new Follower(`${server.url}/subscribe?live=false`, { 'last-event-id': idOf(k) })
  await byHeader.until(() => byHeader.errors > 0)
  byHeader.close()
  t.same(byHeader.seqs().filter((s) => s <= history.at(-1)!.seq), expected, 'Last-Event-ID header')
  const zero = await replayed('lastSeq=0&live=false')
  t.equal(zero.seqs()[0], history.find(isPublic)!.seq, 'lastSeq=0 starts at the first event')
})

t.test('eventsource resumes from the last event it saw after the stream ends', async (t) => {
  const f = new Follower(`${server.url}/subscribe?filter=${b.user}/pub/again/*`)
  t.teardown(() => f.close())
  await f.opened()
  await b.put('/pub/again/1', '1')
  await f.until(() => f.events.length === 1)
  for (const sub of server.ctx.feed.subscribers()) sub.finish() // every stream ends; clients reconnect
  await b.put('/pub/again/2', '2')
  await f.until(() => f.events.length === 2)
  t.equal(f.requests.length, 2, 'one reconnect')
  t.equal(f.requests[1]!['Last-Event-ID'], f.events[0]!.lastEventId)
  const log = await logEvents(server)
  t.same(f.seqs(), log.filter((ev) => ev.user === b.user && ev.path.startsWith('/pub/again/')).map((ev) => ev.seq))
})

t.test('live=false ends once caught up; limit=N ends after N', async (t) => {
  const head = server.ctx.events.head
  const caughtUp = await RawStream.open(`${server.url}/subscribe?lastSeq=${head}&live=false`)
  t.same((await caughtUp.all()).map((f) => f.raw), ['retry: 2000'], 'nothing after the head: just the retry')
  const limited = await RawStream.open(`${server.url}/subscribe?lastSeq=0&limit=3`)
  const frames = await limited.all()
  t.same(limited.events().map(seqOf), history.filter(isPublic).slice(0, 3).map((ev) => ev.seq))
  t.equal(frames.at(-1)!.event, 'PUT', 'the third event is the last frame')
  const liveLimited = await RawStream.open(`${server.url}/subscribe?filter=${a.user}/pub/lim/*&limit=2`)
  await a.put('/pub/lim/1', '1')
  await a.put('/pub/lim/2', '2')
  await a.put('/pub/lim/3', '3')
  await liveLimited.all()
  t.equal(liveLimited.events().length, 2, 'live and limited: two events, then the end')
})

t.test('headers arrive before any event; the stream opens with retry: 2000', async (t) => {
  const s = await RawStream.open(`${server.url}/subscribe?filter=${a.user}/pub/hdr/*`)
  t.teardown(() => s.close())
  // fetch resolved with the headers while no matching event exists yet
  t.equal(s.response.status, 200)
  t.equal(s.response.headers.get('content-type'), 'text/event-stream')
  t.equal(s.response.headers.get('cache-control'), 'no-store')
  t.equal(s.response.headers.get('x-accel-buffering'), 'no')
  await s.until((f) => f.length >= 1)
  t.equal(s.frames[0]!.raw, 'retry: 2000')
  await a.put('/pub/hdr/1', '1')
  await s.until(() => s.events().length === 1)
  t.equal(s.frames.filter((f) => f.event !== undefined)[0]!.event, 'PUT')
})

t.test('keepalive comments, and id-only frames for what was scanned without a match', async (t) => {
  const s = await RawStream.open(`${server.url}/subscribe?filter=${b.user}/pub/quiet/*`)
  t.teardown(() => s.close())
  await s.until((f) => f.filter((x) => x.raw === ': keepalive').length >= 2)
  for (let i = 0; i < 3; i++) await a.put(`/pub/noise/${i}`, 'n')
  const head = server.ctx.events.head
  const frames = await s.until((f) => f.some((x) => x.id === idOf(head)))
  const idFrame = frames.find((x) => x.id === idOf(head))!
  t.equal(idFrame.raw, `id: ${idOf(head)}`, 'an id line and nothing else')
  t.equal(s.events().length, 0)
  // A reconnect with that id starts after the scanned events: only the new match arrives.
  await b.put('/pub/quiet/1', 'q')
  const resumed = await RawStream.open(`${server.url}/subscribe?filter=${b.user}/pub/quiet/*&live=false`, { 'last-event-id': idFrame.id! })
  await resumed.all()
  t.same(resumed.events().map(seqOf), [server.ctx.events.head])

  // Replays end their scan with one too, so a filter that matched early does not rescan.
  const replay = await RawStream.open(`${server.url}/subscribe?filter=${b.user}/pub/profile.json&lastSeq=0&live=false`)
  const all = await replay.all()
  t.same(replay.events().map(seqOf), history.filter((ev) => ev.user === b.user && ev.path === '/pub/profile.json').map((ev) => ev.seq))
  t.same(all.at(-1), { raw: `id: ${idOf(server.ctx.events.head)}`, id: idOf(server.ctx.events.head) }, 'last frame: the scanned head')
})

t.test('errors before the stream starts: JSON with the contract codes', async (t) => {
  const head = server.ctx.events.head
  const cases: [string, Record<string, string>, number, string][] = [
    [`lastSeq=${head + 1}`, {}, 400, 'FutureCursor'],
    [`cursor=${idOf(head + 5)}`, {}, 400, 'FutureCursor'],
    ['', { 'last-event-id': String(head + 1) }, 400, 'FutureCursor'],
    ['cursor=abc', {}, 400, 'InvalidCursor'],
    ['lastSeq=-1', {}, 400, 'InvalidCursor'],
    ['cursor=ZZZZZZZZZZZZZ', {}, 400, 'InvalidCursor'],
    ['', { 'last-event-id': 'not-an-id' }, 400, 'InvalidCursor'],
    ['filter=notakey/*', {}, 400, 'InvalidFilter'],
    [`filter=${a.user}/pub/../x`, {}, 400, 'InvalidFilter'],
    [`filter=${a.user}/pub/*/x`, {}, 400, 'InvalidFilter'],
    [`filter=${a.user}/pub/dir/`, {}, 400, 'InvalidFilter'],
    [Array.from({ length: 65 }, (_, i) => `filter=*/pub/${i}/*`).join('&'), {}, 400, 'TooManyFilters'],
    ['live=maybe', {}, 400, 'InvalidQuery'],
    ['limit=0', {}, 400, 'InvalidQuery'],
  ]
  for (const [query, headers, status, code] of cases) {
    const res = await fetch(`${server.url}/subscribe?${query}`, { headers })
    t.equal(res.status, status, `${query.slice(0, 60)} ${JSON.stringify(headers)}`)
    t.match(res.headers.get('content-type'), /^application\/json/)
    const body = (await res.json()) as { error: string; message: string }
    t.equal(body.error, code, query.slice(0, 60))
    t.type(body.message, 'string')
  }
  const future = (await (await fetch(`${server.url}/subscribe?lastSeq=${head + 1}`)).json()) as { head: string }
  t.equal(future.head, String(head), 'FutureCursor says where the head is')
})

t.test('frame ids are the contract ids for any seq a log can reach', async (t) => {
  const seqs = [0, 1, 31, 32, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]
  for (let i = 0; i < 2000; i++) seqs.push(Math.floor(Math.random() * 2 ** (Math.random() * 53)))
  const wrong = seqs.filter((seq) => new EventFrames({ seq, type: 'DEL', user: a.user, path: '/pub/x', ts: 0 }).id !== encodeId(seq))
  t.same(wrong, [])
  t.equal(encodeId(2 ** 53 - 1), new EventFrames({ seq: 2 ** 53 - 1, type: 'DEL', user: a.user, path: '/pub/x', ts: 0 }).id)
})
