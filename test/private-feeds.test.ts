import t from 'tap'
import { startTestServer, newUser } from './helpers/server.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { RawStream, seqOf, writeMany } from './helpers/feed.js'
import { AckedWrites } from './helpers/acked-writes.js'
import { chunkedBody } from './helpers/raw-http.js'
import { seqOfId } from 'hearth-homeserver-client/id'
import { PAGE } from '../src/feed/pages.js'

// `/priv/` events reach exactly one kind of stream: `/subscribe` opened with the owner's own
// session and filters naming only the owner (or `/events-stream` with a private path and
// that session). Everything else sees the public events around them and nothing else.

const server = await startTestServer(t)
const a = await newUser(server)
const b = await newUser(server)
const aPubOnly = new HomeserverClient(server.url, a.keypair)
await aPubOnly.signin('/pub/:rw')
// every write of the shared server goes through `acked`, which the tests expect from
const acked = new AckedWrites()
await acked.put(a, '/pub/p.txt', 'public')
await acked.put(a, '/priv/s.txt', 'secret')
await acked.put(b, '/priv/b.txt', 'b secret')
await acked.put(b, '/pub/b.txt', 'b public')
await acked.delete(a, '/priv/s.txt')
await acked.put(a, '/priv/notes/1.txt', 'note')

const cookieOf = (c: HomeserverClient) => ({ cookie: `${c.user}=${c.session}` })

async function replay(path: string, headers: Record<string, string> = {}): Promise<number[]> {
  const s = await RawStream.open(`${server.url}${path}`, headers)
  await s.all()
  t.equal(s.response.status, 200, path)
  return s.events().map(seqOf)
}

t.test('replays', async (t) => {
  const log = [...acked.events]
  const pub = (user?: string) => log.filter((ev) => ev.path.startsWith('/pub/') && (user === undefined || ev.user === user)).map((ev) => ev.seq)
  const aAll = log.filter((ev) => ev.user === a.user).map((ev) => ev.seq)
  t.ok(log.some((ev) => ev.path.startsWith('/priv/')), 'private events are in the log')

  const text = await (await fetch(`${server.url}/events/`)).text()
  t.notMatch(text, '/priv/', '/events/ never lists them')
  t.equal(text.split('\n').filter((l) => l.startsWith('PUT') || l.startsWith('DEL')).length, pub().length)

  const q = 'lastSeq=0&live=false'
  t.same(await replay(`/subscribe?filter=*&${q}`, cookieOf(a)), pub(), '* with a session: public only')
  t.same(await replay(`/subscribe?${q}`, cookieOf(a)), pub(), 'no filter with a session: public only')
  t.same(await replay(`/subscribe?filter=${a.user}/*&${q}`), pub(a.user), 'own filter without a session')
  t.same(await replay(`/subscribe?filter=${b.user}/*&${q}`, cookieOf(a)), pub(b.user), "another user's filter with my session")
  t.same(await replay(`/subscribe?filter=${a.user}/*&${q}`, { cookie: `${a.user}=${b.session}` }), pub(a.user), "another user's session under my cookie name")
  t.same(await replay(`/subscribe?filter=${a.user}/*&filter=${b.user}/*&${q}`, { cookie: `${a.user}=${a.session}; ${b.user}=${b.session}` }), pub(), 'two users, both sessions: public only')
  t.same(await replay(`/subscribe?filter=${a.user}/priv/*&${q}`, cookieOf(aPubOnly)), [], 'a session without read access to /priv/')

  t.same(await replay(`/subscribe?filter=${a.user}/*&${q}`, cookieOf(a)), aAll, "the owner's session and one user filter: everything")
  t.same(await replay(`/subscribe/${a.user}/priv/*?${q}`, cookieOf(a)), log.filter((ev) => ev.user === a.user && ev.path.startsWith('/priv/')).map((ev) => ev.seq))
  t.same(await replay(`/subscribe?filter=${a.user}/pub/*&filter=${a.user}/priv/notes/*&${q}`, cookieOf(a)), log.filter((ev) => ev.user === a.user && (ev.path.startsWith('/pub/') || ev.path.startsWith('/priv/notes/'))).map((ev) => ev.seq), 'several filters of the one owner')

  t.same(await replay(`/events-stream?user=${a.user}`, cookieOf(a)), pub(a.user), '/events-stream: /pub/ unless asked')
  t.same(await replay(`/events-stream?user=${a.user}&user=${b.user}`, cookieOf(a)), pub(), '/events-stream, two users')
})

t.test('live', async (t) => {
  const from = acked.events.at(-1)!.seq
  const streams = {
    everything: await RawStream.open(`${server.url}/subscribe?filter=*`, cookieOf(a)),
    noSession: await RawStream.open(`${server.url}/subscribe?filter=${a.user}/*`),
    otherUser: await RawStream.open(`${server.url}/subscribe?filter=${b.user}/*`, cookieOf(a)),
    borrowed: await RawStream.open(`${server.url}/subscribe?filter=${a.user}/*`, { cookie: `${a.user}=${b.session}` }),
    upstream: await RawStream.open(`${server.url}/events-stream?user=${a.user}:${from}&user=${b.user}:${from}&live=true&reverse=false`, cookieOf(a)),
    owner: await RawStream.open(`${server.url}/subscribe?filter=${a.user}/*`, cookieOf(a)),
    ownerUpstream: await RawStream.open(`${server.url}/events-stream?user=${a.user}:${from}&path=/priv/&path=/pub/&live=true`, cookieOf(a)),
  }
  for (const s of Object.values(streams)) t.teardown(() => s.close())
  await acked.put(a, '/priv/live.txt', 'secret')
  await acked.put(b, '/priv/live.txt', 'secret')
  await acked.put(a, '/pub/live.txt', 'public')
  await acked.put(b, '/pub/live.txt', 'public')
  const log = acked.events.filter((ev) => ev.seq > from)
  const seqs = (pred: (ev: (typeof log)[number]) => boolean) => log.filter(pred).map((ev) => ev.seq)
  const isPub = (ev: (typeof log)[number]) => ev.path.startsWith('/pub/')
  const expected: Record<keyof typeof streams, number[]> = {
    everything: seqs(isPub),
    noSession: seqs((ev) => isPub(ev) && ev.user === a.user),
    otherUser: seqs((ev) => isPub(ev) && ev.user === b.user),
    borrowed: seqs((ev) => isPub(ev) && ev.user === a.user),
    upstream: seqs(isPub),
    owner: seqs((ev) => ev.user === a.user),
    ownerUpstream: seqs((ev) => ev.user === a.user),
  }
  for (const [name, s] of Object.entries(streams) as [keyof typeof streams, RawStream][]) {
    const last = expected[name].at(-1)!
    // everything before the last expected event has been dealt with once it arrives
    await s.until(() => s.events().some((f) => seqOf(f) === last))
    t.same(s.events().map(seqOf), expected[name], name)
  }
})

t.test("a one-user replay gives away no position of that user's private events", async (t) => {
  // A's index: a private stretch, one public event, and more private events than fill the
  // rest of a page. One-user replays read that index, whose pages end on A's events (SPEC §6.3).
  const own = await startTestServer(t)
  const [a, b] = [await newUser(own), await newUser(own)]
  // Each phase is acknowledged before the next starts, so the seqs of each are known from the
  // acknowledged writes alone (seqs start at 1, none skipped), whatever the order within one.
  const half = Math.ceil((PAGE + 10) / 2)
  await writeMany(a, half, (i) => `/priv/early/${i}`, 8) // seqs 1..half
  await a.put('/pub/mid', 'x') // just after a private event
  const mid = half + 1
  await b.put('/pub/between', 'x')
  await writeMany(a, half, (i) => `/priv/late/${i}`, 8) // seqs mid + 2 .. mid + 1 + half
  // two public writes last: the head, which any stream may report, is not next to A's events
  await b.put('/pub/last', 'x')
  await b.put('/pub/last', 'y')
  const head = mid + 1 + half + 2
  const hidden = new Set([...Array.from({ length: half }, (_, i) => 1 + i), ...Array.from({ length: half }, (_, i) => mid + 2 + i)])
  const aPubOnly = new HomeserverClient(own.url, a.keypair)
  await aPubOnly.signin('/pub/:rw')
  const viewers: [string, Record<string, string>][] = [
    ['no cookie', {}],
    ["another user's session under A's name", { cookie: `${a.user}=${b.session}` }],
    ["A's session without read access to /priv/", { cookie: `${a.user}=${aPubOnly.session}` }],
  ]
  for (const lastSeq of [0, 1, 7, half - 1, half, mid, mid + 1, PAGE, head - 2, head - 1]) {
    for (const path of ['/pub/nothing', '/*', '/priv/*']) {
      for (const [who, headers] of viewers) {
        const s = await RawStream.open(`${own.url}/subscribe?filter=${a.user}${path}&lastSeq=${lastSeq}&live=false`, headers)
        await s.all()
        const where = `lastSeq=${lastSeq}, ${path}, ${who}`
        t.same(s.events().map(seqOf), path === '/*' && lastSeq < mid ? [mid] : [], `${where}: only the public event`)
        const marks = s.frames.filter((f) => f.id !== undefined && f.event === undefined).map((f) => Number(seqOfId(f.id!)))
        t.same(marks.filter((seq) => hidden.has(seq) || hidden.has(seq - 1)), [], `${where}: no id on or just after a private event`)
        t.same(marks, [head], `${where}: the head is the one position reported without an event`)
      }
    }
  }
})

t.test('signing out ends the private streams that session opened; public streams go on', async (t) => {
  const owner = await newUser(server)
  const other = new HomeserverClient(server.url, owner.keypair)
  await other.signin()
  const priv = await RawStream.open(`${server.url}/subscribe/${owner.user}/priv/*`, cookieOf(owner))
  const upstream = await RawStream.open(`${server.url}/events-stream?user=${owner.user}&path=/priv/&live=true`, cookieOf(owner))
  const viaOther = await RawStream.open(`${server.url}/subscribe/${owner.user}/priv/*`, cookieOf(other))
  const pub = await RawStream.open(`${server.url}/subscribe/${owner.user}/*`)
  for (const s of [priv, upstream, viaOther, pub]) t.equal(s.response.status, 200)
  await owner.put('/priv/before.txt', 'seen')
  await priv.until((f) => f.some((x) => x.event === 'PUT'))
  await upstream.until((f) => f.some((x) => x.event === 'PUT'))

  await owner.signout()
  await t.resolves(priv.all(5000), 'the /subscribe stream opened with the signed-out session ends')
  await t.resolves(upstream.all(5000), 'and so does the /events-stream one')
  await owner.request('PUT', '/priv/after.txt', 'never sent') // 401 now: the session is gone
  await other.put('/priv/after.txt', 'written with the other session')
  await other.put('/pub/after.txt', 'public')
  await t.resolves(viaOther.until((f) => f.some((x) => x.event === 'PUT' && x.data?.includes('/priv/after.txt') === true)), 'a stream opened with another session of the same user goes on')
  await t.resolves(pub.until((f) => f.some((x) => x.event === 'PUT' && x.data?.includes('/pub/after.txt') === true)), 'and so does a public one')
  t.notOk(priv.frames.some((x) => x.data?.includes('/priv/after.txt')), 'nothing written after sign-out reached the ended stream')
  for (const s of [viaOther, pub]) s.close()
})

t.test("a one-user replay's writes depend only on what it may see: no chunk size counts private files", async (t) => {
  // A and B have the same number of public events; A also has private ones, before, among and
  // after them, so that A's index puts page boundaries where only private events could. Read as
  // anyone but A's reading session, their replays must be written in the same pieces (HTTP
  // chunks are the server's writes, whatever TCP does). A fresh pair for each case, so no page
  // one case keeps is served to the next.
  const own = await startTestServer(t)
  const aPubOnly = async (a: HomeserverClient) => {
    const c = new HomeserverClient(own.url, a.keypair)
    await c.signin('/pub/:rw')
    return { cookie: `${a.user}=${c.session}` }
  }
  // events per write of the server; the opening retry and any keepalive are the same for all
  const pieces = async (path: string, headers: Record<string, string> = {}) =>
    (await chunkedBody(own.url, path, headers)).map((c) => (c.toString().match(/^event: (PUT|DEL)$/gm) ?? []).length).filter((n) => n > 0)
  for (const path of ['/subscribe/%s/*?lastSeq=0&live=false', '/events-stream?user=%s', '/events-stream?user=%s&reverse=true']) {
    for (const who of ['no cookie', "A's session without read access to /priv/"]) {
      const [a, b] = [await newUser(own), await newUser(own)]
      await writeMany(a, PAGE - 30, (i) => `/priv/early/${i}`, 8)
      await writeMany(a, 80, (i) => (i % 4 === 0 ? `/priv/among/${i}` : `/pub/p/${i}`), 8)
      await writeMany(a, PAGE - 30, (i) => `/priv/late/${i}`, 8)
      await writeMany(b, 60, (i) => `/pub/p/${i}`, 8)
      const ofA = await pieces(path.replace('%s', a.user), who === 'no cookie' ? {} : await aPubOnly(a))
      const ofB = await pieces(path.replace('%s', b.user))
      t.equal(ofA.reduce((x, y) => x + y, 0), 60, `${path}, ${who}: every public event of A`)
      t.same(ofA, ofB, `${path}, ${who}: written in the same pieces as B's`)
    }
  }
})

t.test('a private stream ends when its session expires (SESSION_TTL); a public one goes on', async (t) => {
  const own = await startTestServer(t, { SESSION_TTL: '4s' })
  const owner = await newUser(own)
  const priv = await RawStream.open(`${own.url}/subscribe/${owner.user}/priv/*`, cookieOf(owner))
  const pub = await RawStream.open(`${own.url}/subscribe/${owner.user}/*`)
  await owner.put('/priv/early.txt', 'seen')
  await priv.until((f) => f.some((x) => x.event === 'PUT'))
  await t.resolves(priv.all(20_000), 'the stream opened with the session ends once it expires')
  t.equal((await owner.request('GET', '/priv/early.txt')).status, 401, 'the session is gone')
  const again = new HomeserverClient(own.url, owner.keypair)
  await again.signin()
  await again.put('/pub/after.txt', 'public')
  await t.resolves(pub.until((f) => f.some((x) => x.data?.includes('/pub/after.txt') === true)), 'the public stream goes on')
  pub.close()
})
