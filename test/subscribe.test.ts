import t from 'tap'
import { startTestServer, newUser } from './helpers/server.js'
import { Follower, RawStream, seqOf } from './helpers/feed.js'
import { idOf } from 'hearth-homeserver-client/id'
import { AckedWrites, contentHash, type AckedEvent } from './helpers/acked-writes.js'

// One server for the whole file: the log grows as the tests below add to it, every write
// goes through `acked`, and each test derives what it expects from the acknowledged writes.
const server = await startTestServer(t, { KEEPALIVE_MS: '200' })
const a = await newUser(server)
const b = await newUser(server)
const acked = new AckedWrites()
await acked.put(a, '/pub/x/a.txt', 'a')
await acked.put(a, '/pub/x/sub/b.txt', 'b')
await acked.put(b, '/pub/x/a.txt', 'b-a')
await acked.put(a, '/pub/y/c.txt', 'c')
await acked.put(a, '/priv/secret.txt', 'hidden')
await acked.put(b, '/pub/profile.json', '{"name":"b"}')
await acked.put(a, '/pub/profile.json', '{"name":"a"}')
await acked.delete(a, '/pub/y/c.txt')
await acked.put(b, '/pub/y/d.txt', 'd')
const history = [...acked.events]
const lastSeq = () => acked.events.at(-1)!.seq
const isPublic = (ev: AckedEvent) => ev.path.startsWith('/pub/')

/** Replays with eventsource@4 up to the end of a `live=false` stream. */
async function replayed(query: string, path = '/subscribe'): Promise<Follower> {
  const f = new Follower(`${server.url}${path}?${query}`)
  await f.until(() => f.errors > 0) // the end of the response, before any reconnect
  f.close()
  return f
}

t.test('each filter form of the contract, replayed from lastSeq=0 with eventsource', async (t) => {
  const cases: [string, (ev: AckedEvent) => boolean][] = [
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
    uri: `pubky://${a.user}/pub/y/c.txt`, contentHash: contentHash('c'), size: 1, ts: put.ts,
  })
  t.same(del, { id: idOf(delEv!.seq), seq: String(delEv!.seq), type: 'DEL', user: a.user, path: '/pub/y/c.txt', uri: `pubky://${a.user}/pub/y/c.txt`, ts: del.ts })
  for (const [ev, got] of [[putEv!, put], [delEv!, del]] as const) {
    t.ok(got.ts >= ev.sentAt && got.ts <= ev.ackedAt, `${ev.type}: ts is a time while the write was in flight`)
  }
  t.equal(f.events[0]!.type, 'PUT')
  t.equal(f.events[1]!.type, 'DEL')
  t.equal(f.events[0]!.lastEventId, idOf(putEv!.seq))
})

t.test('live: only what matches, in order, from now', async (t) => {
  const f = new Follower(`${server.url}/subscribe?filter=${a.user}/pub/live/*`)
  t.teardown(() => f.close())
  await f.opened()
  const one = await acked.put(a, '/pub/live/1', '1')
  await acked.put(b, '/pub/live/1', 'not mine')
  await acked.put(a, '/pub/elsewhere', 'no')
  const two = await acked.put(a, '/pub/live/2', '2')
  await f.until(() => f.events.length >= 2)
  t.same(f.seqs(), [one.seq, two.seq])
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
  const one = await acked.put(b, '/pub/again/1', '1')
  await f.until(() => f.events.length === 1)
  for (const sub of server.ctx.feed.subscribers()) sub.finish() // every stream ends; clients reconnect
  const two = await acked.put(b, '/pub/again/2', '2')
  await f.until(() => f.events.length === 2)
  t.equal(f.requests.length, 2, 'one reconnect')
  t.equal(f.requests[1]!['Last-Event-ID'], f.events[0]!.lastEventId)
  t.same(f.seqs(), [one.seq, two.seq])
})

t.test('live=false ends once caught up; limit=N ends after N', async (t) => {
  const caughtUp = await RawStream.open(`${server.url}/subscribe?lastSeq=${lastSeq()}&live=false`)
  t.same((await caughtUp.all()).map((f) => f.raw), ['retry: 2000'], 'nothing after the head: just the retry')
  const limited = await RawStream.open(`${server.url}/subscribe?lastSeq=0&limit=3`)
  const frames = await limited.all()
  t.same(limited.events().map(seqOf), history.filter(isPublic).slice(0, 3).map((ev) => ev.seq))
  t.equal(frames.at(-1)!.event, 'PUT', 'the third event is the last frame')
  const liveLimited = await RawStream.open(`${server.url}/subscribe?filter=${a.user}/pub/lim/*&limit=2`)
  const lim = [await acked.put(a, '/pub/lim/1', '1'), await acked.put(a, '/pub/lim/2', '2'), await acked.put(a, '/pub/lim/3', '3')]
  await liveLimited.all()
  t.same(liveLimited.events().map(seqOf), lim.slice(0, 2).map((ev) => ev.seq), 'live and limited: two events, then the end')
})

t.test('recent=N: the newest matches first, then live from there; a cursor wins', async (t) => {
  const log = [...acked.events]
  const newest = (n: number, pred: (ev: AckedEvent) => boolean) => log.filter(pred).slice(-n).map((ev) => ev.seq)
  const replay = async (query: string, headers: Record<string, string> = {}) => {
    const s = await RawStream.open(`${server.url}/subscribe?${query}&live=false`, headers)
    await s.all()
    return s.events().map(seqOf)
  }
  t.same(await replay('recent=3'), newest(3, isPublic), 'every public event: the newest three, in log order')
  t.same(await replay(`filter=${a.user}/*&recent=2`), newest(2, (ev) => ev.user === a.user && isPublic(ev)), 'one user: the newest public ones')
  t.same(await replay(`filter=${a.user}/*&recent=50`, a.headers()), newest(50, (ev) => ev.user === a.user), "the owner's session: private ones too")
  t.same(await replay(`filter=*/pub/x/*&recent=1000`), newest(1000, (ev) => ev.path.startsWith('/pub/x/')), 'fewer than asked: all of them')
  t.same(await replay(`filter=*/pub/none/*&recent=5`), [], 'none: nothing to replay')
  const k = log[3]!.seq
  t.same(await replay(`recent=1&lastSeq=${k}`), log.filter((ev) => isPublic(ev) && ev.seq > k).map((ev) => ev.seq), 'a cursor wins over recent')
  t.same(await replay('recent=1', { 'last-event-id': idOf(k) }), log.filter((ev) => isPublic(ev) && ev.seq > k).map((ev) => ev.seq), 'so a reconnect resumes')

  // live: the newest two, then each new match once, also one written while the stream opens
  const before = [await acked.put(b, '/pub/recent/1', '1'), await acked.put(b, '/pub/recent/2', '2'), await acked.put(b, '/pub/recent/3', '3')]
  const racing = acked.put(b, '/pub/recent/4', '4')
  const s = await RawStream.open(`${server.url}/subscribe?filter=*/pub/recent/*&recent=2`)
  t.teardown(() => s.close())
  const after = [await racing, await acked.put(a, '/pub/recent/5', '5')]
  await s.until(() => s.events().map(seqOf).includes(after[1]!.seq))
  const got = s.events().map(seqOf)
  const first = got[0]!
  t.ok(first === before[1]!.seq || first === before[2]!.seq, 'it opens with the newest matches of its moment')
  t.same(got, [...before, ...after].map((ev) => ev.seq).filter((seq) => seq >= first), 'then every later match once, in order')
  await s.until((f) => f.some((x) => x.raw === ': keepalive'))
  t.same(s.events().map(seqOf), got, 'and nothing twice')
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
  await acked.put(a, '/pub/hdr/1', '1')
  await s.until(() => s.events().length === 1)
  t.equal(s.frames.filter((f) => f.event !== undefined)[0]!.event, 'PUT')
})

t.test('keepalive comments, and id-only frames for what was scanned without a match', async (t) => {
  const s = await RawStream.open(`${server.url}/subscribe?filter=${b.user}/pub/quiet/*`)
  t.teardown(() => s.close())
  await s.until((f) => f.filter((x) => x.raw === ': keepalive').length >= 2)
  for (let i = 0; i < 3; i++) await acked.put(a, `/pub/noise/${i}`, 'n')
  const head = lastSeq()
  const frames = await s.until((f) => f.some((x) => x.id === idOf(head)))
  const idFrame = frames.find((x) => x.id === idOf(head))!
  t.equal(idFrame.raw, `id: ${idOf(head)}`, 'an id line and nothing else')
  t.equal(s.events().length, 0)
  // A reconnect with that id starts after the scanned events: only the new match arrives.
  const quiet = await acked.put(b, '/pub/quiet/1', 'q')
  const resumed = await RawStream.open(`${server.url}/subscribe?filter=${b.user}/pub/quiet/*&live=false`, { 'last-event-id': idFrame.id! })
  await resumed.all()
  t.same(resumed.events().map(seqOf), [quiet.seq])

  // Replays end their scan with one too, so a filter that matched early does not rescan.
  const replay = await RawStream.open(`${server.url}/subscribe?filter=${b.user}/pub/profile.json&lastSeq=0&live=false`)
  const all = await replay.all()
  t.same(replay.events().map(seqOf), history.filter((ev) => ev.user === b.user && ev.path === '/pub/profile.json').map((ev) => ev.seq))
  t.same(all.at(-1), { raw: `id: ${idOf(lastSeq())}`, id: idOf(lastSeq()) }, 'last frame: the scanned head')
})

t.test('errors before the stream starts: JSON with the contract codes', async (t) => {
  const head = lastSeq()
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
    ['recent=0', {}, 400, 'InvalidQuery'],
    ['recent=1001', {}, 400, 'InvalidQuery'],
    ['recent=x', {}, 400, 'InvalidQuery'],
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

