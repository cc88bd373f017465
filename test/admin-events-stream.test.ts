import t from 'tap'
import { randomKeypair } from '../src/auth/keys.js'
import { idOf } from 'hearth-homeserver-client/id'
import { startTestServer, newUser } from './helpers/server.js'
import { RawStream, seqOf } from './helpers/feed.js'
import { AckedWrites } from './helpers/acked-writes.js'
import { until } from './helpers/until.js'

// The admin firehose, `/admin/events-stream`, next to the per-user `/events-stream`: the same
// frames and limits, every user's events, `/priv/` included, for whoever holds ADMIN_PASSWORD.

const PASSWORD = 'firehose secret'
const admin = { 'x-admin-password': PASSWORD }
const server = await startTestServer(t, { ADMIN_PASSWORD: PASSWORD, KEEPALIVE_MS: '200' })
const a = await newUser(server)
const b = await newUser(server)
const acked = new AckedWrites()
await acked.put(a, '/pub/x/one.txt', 'hello')
await acked.put(b, '/priv/b.txt', 'b secret')
await acked.put(a, '/priv/notes/1.txt', 'note')
await acked.put(b, '/pub/x/one.txt', 'from b')
await acked.delete(a, '/priv/notes/1.txt')
await acked.put(a, '/pub/y.txt', 'y')
const history = [...acked.events]

async function body(path: string, headers: Record<string, string> = admin) {
  const res = await fetch(`${server.url}${path}`, { headers })
  return { status: res.status, type: res.headers.get('content-type'), cache: res.headers.get('cache-control'), text: await res.text() }
}
const firehose = (query: string, headers?: Record<string, string>) => body(`/admin/events-stream${query}`, headers)
const cursors = (text: string) => [...text.matchAll(/^data: cursor: (\d+)$/gm)].map((m) => Number(m[1]))
const seqsWhere = (pred: (ev: (typeof history)[number]) => boolean) => history.filter(pred).map((ev) => ev.seq)

t.test('the firehose: every user, /priv/ included, not cached', async (t) => {
  const all = await firehose('')
  t.equal(all.status, 200)
  t.equal(all.type, 'text/event-stream')
  t.equal(all.cache, 'no-store')
  t.same(cursors(all.text), history.map((ev) => ev.seq), 'every event of every user, in log order')
  const secret = history[1]!
  t.ok(all.text.includes(`event: PUT\ndata: pubky://${b.user}/priv/b.txt\ndata: cursor: ${secret.seq}\ndata: content_hash: ${secret.contentHash}\nid: ${secret.seq}\n\n`), 'a private event, framed as the public ones')
  const del = history[4]!
  t.ok(all.text.includes(`event: DEL\ndata: pubky://${a.user}/priv/notes/1.txt\ndata: cursor: ${del.seq}\nid: ${del.seq}\n\n`), 'a private DEL')
})

t.test('user=: the per-user form, byte for byte the frames of /events-stream', async (t) => {
  const mine = await firehose(`?user=${a.user}`)
  t.same(cursors(mine.text), seqsWhere((ev) => ev.user === a.user), "one user's events, private ones too")
  const pub = await firehose(`?user=${a.user}&path=/pub/`)
  const upstream = await body(`/events-stream?user=${a.user}`, {})
  t.equal(pub.text, upstream.text, 'its public part is what /events-stream sends')
  t.equal(upstream.cache, pub.cache)
  const two = await firehose(`?user=${b.user}&user=${a.user}&user=${b.user}`)
  t.same(cursors(two.text), history.map((ev) => ev.seq), 'several users, each once, in log order')
  const priv = await firehose('?path=/priv/')
  t.same(cursors(priv.text), seqsWhere((ev) => ev.path.startsWith('/priv/')), 'a path for every user')
  const exact = await firehose('?path=pub/x/one.txt&path=/priv/b.txt')
  t.same(cursors(exact.text), seqsWhere((ev) => ev.path === '/pub/x/one.txt' || ev.path === '/priv/b.txt'), 'exact paths, a union')
})

t.test('one cursor for the whole log; limit; reverse', async (t) => {
  const third = history[2]!.seq
  t.same(cursors((await firehose(`?cursor=${third}`)).text), seqsWhere((ev) => ev.seq > third), 'exclusive')
  // an id that is all digits reads as a decimal, as upstream reads it
  const lettered = history.find((ev) => /[A-Z]/.test(idOf(ev.seq)))!.seq
  t.same(cursors((await firehose(`?cursor=${idOf(lettered)}`)).text), seqsWhere((ev) => ev.seq > lettered), 'or an id')
  t.same(cursors((await firehose(`?cursor=${third}&user=${a.user}`)).text), seqsWhere((ev) => ev.seq > third && ev.user === a.user))
  t.same(cursors((await firehose('?limit=2')).text), history.slice(0, 2).map((ev) => ev.seq))
  t.same(cursors((await firehose('?reverse=true')).text), history.map((ev) => ev.seq).reverse(), 'newest first')
  t.same(cursors((await firehose(`?reverse=1&cursor=${history[4]!.seq}&limit=2`)).text), seqsWhere((ev) => ev.seq < history[4]!.seq).reverse().slice(0, 2), 'before the cursor, at most limit')
  t.same(cursors((await firehose(`?reverse=1&user=${a.user}&limit=2`)).text), seqsWhere((ev) => ev.user === a.user).reverse().slice(0, 2), "one user's newest")
  const past = await firehose('?cursor=999999')
  t.equal(past.status, 200)
  t.equal(past.text, '', 'a cursor past the head: nothing yet')
})

t.test('live, and resumed from the last cursor: no gap, no duplicate', async (t) => {
  const first = await RawStream.open(`${server.url}/admin/events-stream?live=true&limit=${history.length + 3}`, admin)
  t.teardown(() => first.close())
  t.equal(first.response.headers.get('cache-control'), 'no-store')
  const writes = (async () => {
    for (let i = 0; i < 12; i++) await acked.put(i % 2 ? a : b, i % 3 ? `/priv/live/${i}` : `/pub/live/${i}`, String(i))
  })()
  await first.all() // the limit ends it while writes go on
  const seen = first.events().map(seqOf)
  t.equal(seen.length, history.length + 3)
  const second = await RawStream.open(`${server.url}/admin/events-stream?live=1&cursor=${seen.at(-1)}`, admin)
  t.teardown(() => second.close())
  await writes
  const all = acked.events.map((ev) => ev.seq)
  await second.until(() => second.events().length + seen.length >= all.length)
  await second.until((f) => f.some((x) => x.raw === ':')) // a keepalive: nothing more was on its way
  t.same([...seen, ...second.events().map(seqOf)], all, 'every event once, in order')
  t.same(second.events().map((f) => f.data?.split('\n')[0]), acked.events.slice(seen.length).map((ev) => `pubky://${ev.user}${ev.path}`))
})

t.test('the password: missing or wrong is 401 before anything else', async (t) => {
  for (const [headers, what] of [[{}, 'missing'], [{ 'x-admin-password': 'wrong' }, 'wrong'], [{ 'x-admin-password': `${PASSWORD}!` }, 'close'], [{ 'x-admin-password': '' }, 'empty']] as const) {
    for (const query of ['', '?live=true', '?limit=abc', `?user=${randomKeypair().z32}`]) {
      const res = await fetch(`${server.url}/admin/events-stream${query}`, { headers })
      t.equal(res.status, 401, `${what} ${query}`)
      if (res.status !== 401) await res.body?.cancel() // a stream that was let in: do not wait on it
      else t.equal(await res.text(), 'Wrong admin password')
      t.match(res.headers.get('content-type'), /^text\/plain/)
    }
  }
})

t.test('errors: upstream texts and statuses, plain text', async (t) => {
  const stranger = randomKeypair().z32
  const tooMany = Array.from({ length: 51 }, () => `user=${randomKeypair().z32}`).join('&')
  const cases: [string, number, string][] = [
    ['?cursor=notanumber', 400, 'Invalid cursor'],
    ['?cursor=-1', 400, 'Invalid cursor'],
    ['?live=true&reverse=true', 400, 'Cannot use live mode with reverse ordering'],
    ['?limit=abc', 400, 'Invalid limit: abc'],
    ['?limit=0', 400, 'limit must be at least 1'],
    ['?user=notakey', 400, 'Invalid public key: notakey'],
    [`?user=${a.user}:5`, 400, `Invalid public key: ${a.user}:5`],
    [`?${tooMany}`, 400, 'Too many users. Maximum allowed: 50'],
    ['?path=/pub/../..', 400, 'Invalid path: /pub/../..'],
    [`?user=${stranger}`, 404, 'Not Found'],
    [`?user=${a.user}&user=${stranger}&cursor=x`, 404, 'Not Found'],
  ]
  for (const [query, status, text] of cases) {
    const res = await firehose(query)
    const label = query.length > 70 ? `${query.slice(0, 70)}…` : query
    t.equal(res.status, status, label)
    t.equal(res.text, text, label)
    t.match(res.type, /^text\/plain/, label)
  }
  const fifty = Array.from({ length: 51 }, () => `user=${a.user}`).join('&')
  t.equal((await firehose(`?${fifty}`)).status, 200, 'a repeated user counts once')
})

t.test('no ADMIN_PASSWORD: no such route', async (t) => {
  const closed = await startTestServer(t)
  for (const headers of [{}, { 'x-admin-password': '' }, { 'x-admin-password': 'anything' }] as Record<string, string>[]) {
    const res = await fetch(`${closed.url}/admin/events-stream`, { headers })
    t.equal(res.status, 404)
    t.match(await res.json(), { error: 'NotFound' })
  }
})

t.test('it counts against MAX_STREAMS_PER_IP with the other streams', async (t) => {
  const limited = await startTestServer(t, { ADMIN_PASSWORD: PASSWORD, MAX_STREAMS_PER_IP: '2' })
  const user = await newUser(limited)
  const open = [
    await RawStream.open(`${limited.url}/admin/events-stream?live=true`, admin),
    await RawStream.open(`${limited.url}/events-stream?user=${user.user}&live=true`),
  ]
  for (const s of open) t.teardown(() => s.close())
  t.same(open.map((s) => s.response.status), [200, 200])
  for (const path of ['/admin/events-stream', '/admin/events-stream?reverse=true', `/events-stream?user=${user.user}`, '/subscribe']) {
    const refused = await fetch(`${limited.url}${path}`, { headers: admin })
    t.equal(refused.status, 429, path)
    await refused.body?.cancel()
  }
  open[0]!.close()
  let reverse: RawStream | undefined
  await until(async () => {
    reverse?.close()
    reverse = await RawStream.open(`${limited.url}/admin/events-stream?reverse=true`, admin)
    return reverse.response.status !== 429
  }, 'the closed firehose to give its slot back', 10_000)
  t.equal(reverse!.response.status, 200)
  await reverse!.all() // a reverse replay ends by itself, and gives its slot back
  await until(async () => {
    const res = await fetch(`${limited.url}/admin/events-stream`, { headers: admin })
    await res.body?.cancel()
    return res.status === 200
  }, 'the reverse replay to give its slot back', 10_000)
})
