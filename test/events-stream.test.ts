import t from 'tap'
import { randomKeypair } from '../src/auth/keys.js'
import { startTestServer, newUser } from './helpers/server.js'
import { RawStream } from './helpers/feed.js'
import { AckedWrites, contentHash as hashOf } from './helpers/acked-writes.js'

const server = await startTestServer(t, { KEEPALIVE_MS: '200' })
const a = await newUser(server)
const b = await newUser(server)
// every write goes through `acked`: what the tests expect comes from the acknowledged writes
const acked = new AckedWrites()
await acked.put(a, '/pub/x/one.txt', 'hello')
await acked.put(b, '/pub/x/one.txt', 'from b')
await acked.put(a, '/pub/x/deep/two.txt', 'two')
await acked.put(a, '/pub/y.txt', 'y')
await acked.put(a, '/priv/secret.txt', 'secret')
await acked.delete(a, '/pub/x/one.txt')
await acked.put(b, '/pub/z.txt', 'z')
const history = [...acked.events]

async function body(query: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${server.url}/events-stream?${query}`, { headers })
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() }
}

/** The seqs in a stream's `data: cursor: N` lines. */
const cursors = (text: string) => [...text.matchAll(/^data: cursor: (\d+)$/gm)].map((m) => Number(m[1]))
const seqsWhere = (pred: (ev: (typeof history)[number]) => boolean) => history.filter(pred).map((ev) => ev.seq)

t.test('frames, byte for byte', async (t) => {
  const { status, type, text } = await body(`user=${a.user}`)
  t.equal(status, 200)
  t.equal(type, 'text/event-stream')
  const [put1, put2, put3, del] = history.filter((ev) => ev.user === a.user && ev.path.startsWith('/pub/'))
  t.equal(
    text,
    `event: PUT\ndata: pubky://${a.user}/pub/x/one.txt\ndata: cursor: ${put1!.seq}\ndata: content_hash: ${hashOf('hello')}\nid: ${put1!.seq}\n\n` +
      `event: PUT\ndata: pubky://${a.user}/pub/x/deep/two.txt\ndata: cursor: ${put2!.seq}\ndata: content_hash: ${hashOf('two')}\nid: ${put2!.seq}\n\n` +
      `event: PUT\ndata: pubky://${a.user}/pub/y.txt\ndata: cursor: ${put3!.seq}\ndata: content_hash: ${hashOf('y')}\nid: ${put3!.seq}\n\n` +
      `event: DEL\ndata: pubky://${a.user}/pub/x/one.txt\ndata: cursor: ${del!.seq}\nid: ${del!.seq}\n\n`,
    'no retry line, no private event, DEL without content_hash',
  )
})

t.test('users with their own cursors', async (t) => {
  const ca = history[1]!.seq
  const cb = history[1]!.seq + 1
  const { text } = await body(`user=${a.user}:${ca}&user=${b.user}:${cb}`)
  t.same(cursors(text), seqsWhere((ev) => ev.path.startsWith('/pub/') && ((ev.user === a.user && ev.seq > ca) || (ev.user === b.user && ev.seq > cb))))
  const both = await body(`user=${a.user}&user=${b.user}`)
  t.same(cursors(both.text), seqsWhere((ev) => ev.path.startsWith('/pub/')), 'no cursor: from the start, in log order')
  const dup = await body(`user=${a.user}:0&user=${a.user}:${ca}`)
  t.same(cursors(dup.text), seqsWhere((ev) => ev.user === a.user && ev.path.startsWith('/pub/') && ev.seq > ca), 'the last cursor of a user wins')
  const past = await body(`user=${a.user}:999999`)
  t.equal(past.status, 200)
  t.equal(past.text, '', 'a cursor past the head: no events')
})

t.test('paths: a folder and below, or exactly one file', async (t) => {
  const folder = await body(`user=${a.user}&path=/pub/x/`)
  t.same(cursors(folder.text), seqsWhere((ev) => ev.user === a.user && ev.path.startsWith('/pub/x/')))
  const exact = await body(`user=${a.user}&path=pub/y.txt`)
  t.same(cursors(exact.text), seqsWhere((ev) => ev.user === a.user && ev.path === '/pub/y.txt'), 'a missing leading / is added')
  const two = await body(`user=${a.user}&user=${b.user}&path=/pub/x/deep/&path=/pub/z.txt`)
  t.same(cursors(two.text), seqsWhere((ev) => ev.path.startsWith('/pub/x/deep/') || ev.path === '/pub/z.txt'))
})

t.test('limit, reverse', async (t) => {
  const limited = await body(`user=${a.user}&limit=2`)
  t.same(cursors(limited.text), seqsWhere((ev) => ev.user === a.user && ev.path.startsWith('/pub/')).slice(0, 2))
  const reverse = await body(`user=${a.user}&user=${b.user}&reverse=true`)
  t.same(cursors(reverse.text), seqsWhere((ev) => ev.path.startsWith('/pub/')).reverse(), 'newest first')
  const before = history[4]!.seq
  const reverseFrom = await body(`user=${a.user}:${before}&reverse=1&limit=2`)
  t.same(cursors(reverseFrom.text), seqsWhere((ev) => ev.user === a.user && ev.path.startsWith('/pub/') && ev.seq < before).reverse().slice(0, 2), 'before the cursor, at most limit')
})

t.test('live: replay, then new events, then the limit ends it', async (t) => {
  const s = await RawStream.open(`${server.url}/events-stream?user=${b.user}&live=true&limit=4`)
  t.teardown(() => s.close())
  await s.until((f) => f.filter((x) => x.event).length === 2)
  await acked.put(a, '/pub/x/not-b.txt', 'a')
  await acked.put(b, '/pub/live/1.txt', '1')
  await s.until((f) => f.some((x) => x.raw === ':'), 5000) // upstream's keepalive: an empty comment
  await acked.delete(b, '/pub/live/1.txt')
  const frames = await s.all()
  t.same(s.events().map((f) => Number(f.id)), acked.events.filter((ev) => ev.user === b.user).map((ev) => ev.seq))
  t.same(s.events().map((f) => f.event), ['PUT', 'PUT', 'PUT', 'DEL'])
  t.ok(frames.every((f) => f.retry === undefined), 'no retry line')
})

t.test('private paths need the owner session with read access', async (t) => {
  const { status, text } = await body(`user=${a.user}&path=/priv/`, a.headers())
  t.equal(status, 200)
  t.same(cursors(text), seqsWhere((ev) => ev.user === a.user && ev.path.startsWith('/priv/')))
  const mixed = await body(`user=${a.user}&path=/priv/&path=/pub/y.txt`, a.headers())
  t.same(cursors(mixed.text), seqsWhere((ev) => ev.user === a.user && (ev.path.startsWith('/priv/') || ev.path === '/pub/y.txt')))
})

t.test('errors: upstream texts and statuses, plain text', async (t) => {
  const stranger = randomKeypair().z32
  const pubOnly = await newUser(server, '/pub/:rw')
  const tooMany = Array.from({ length: 51 }, () => `user=${a.user}`).join('&')
  const cases: [string, Record<string, string>, number, string][] = [
    [`user=${a.user}&limit=abc`, {}, 400, 'Invalid limit: abc'],
    [`user=${a.user}&limit=70000`, {}, 400, 'Invalid limit: 70000'],
    [`user=${a.user}&limit=0`, {}, 400, 'limit must be at least 1'],
    [`user=${a.user}&live=true&reverse=true`, {}, 400, 'Cannot use live mode with reverse ordering'],
    ['user=notakey', {}, 400, 'Invalid public key: notakey'],
    ['user=notakey:5', {}, 400, 'Invalid public key: notakey'],
    ['', {}, 400, 'user parameter is required'],
    ['user=', {}, 400, 'user parameter is required'],
    [tooMany, {}, 400, 'Too many users. Maximum allowed: 50'],
    [`user=${a.user}&path=/pub/../..`, {}, 400, 'Invalid path: /pub/../..'],
    [`user=${a.user}&path=/other/`, {}, 403, "Reading from directories other than '/pub/' and '/priv/' is forbidden"],
    [`user=${a.user}&path=/priv/`, {}, 401, 'Authentication required to read private storage'],
    [`user=${a.user}&user=${b.user}&path=/priv/`, a.headers(), 403, 'A private read must be scoped to exactly one user'],
    [`user=${a.user}&path=/priv/`, { cookie: `${a.user}=${b.session}` }, 403, 'Session user does not match target tenant'],
    [`user=${pubOnly.user}&path=/priv/`, pubOnly.headers(), 403, 'Session does not have read access to path'],
    [`user=${stranger}`, {}, 404, 'Not Found'],
    [`user=${a.user}&user=${stranger}`, {}, 404, 'Not Found'],
    [`user=${a.user}:xyz`, {}, 400, 'Invalid cursor: xyz'],
    [`user=${a.user}:-1`, {}, 400, 'Invalid cursor: -1'],
  ]
  for (const [query, headers, status, text] of cases) {
    const res = await body(query, headers)
    const label = query.length > 70 ? `${query.slice(0, 70)}…` : query
    t.equal(res.status, status, label)
    t.equal(res.text, text, label)
    t.match(res.type, /^text\/plain/, label)
  }
})
