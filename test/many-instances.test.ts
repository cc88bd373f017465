import t from 'tap'
import { randomKeypair } from '../src/auth/keys.js'
import { signAuthToken } from '../src/auth/token.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { freshDatabase, requirePostgres } from './helpers/postgres.js'
import { instances } from './helpers/instances.js'
import { PgProxy } from './helpers/pg-proxy.js'
import { startTestServer } from './helpers/server.js'
import { until } from './helpers/until.js'
import { openSse, type StreamEvent } from './helpers/sse.js'
import { RawStream } from './helpers/feed.js'

/**
 * SPEC §9: three `hearth serve` processes on one PostgreSQL database behave as one homeserver.
 * Each instance is a real child process with its own (unused) data folder, except where a
 * test stands a proxy between one instance and the database and watches what passes.
 */

const ADMIN = 'admin-secret'

/** A live /subscribe stream from `lastSeq`, collecting event seqs until it has `upTo`. */
function follow(url: string, lastSeq: number) {
  const events: StreamEvent[] = []
  let wake = () => {}
  const conn = openSse(`${url}/subscribe?lastSeq=${lastSeq}`, {}, (f) => {
    if ((f.event === 'PUT' || f.event === 'DEL') && f.data !== undefined) {
      events.push(JSON.parse(f.data) as StreamEvent)
      wake()
    }
  })
  return {
    events,
    close: () => conn.close(),
    async until(seq: number, ms = 30_000): Promise<void> {
      const deadline = Date.now() + ms
      while (Number(events.at(-1)?.seq ?? lastSeq) < seq) {
        if (Date.now() > deadline) throw new Error(`a subscriber from ${lastSeq} on ${url} reached only ${events.at(-1)?.seq ?? lastSeq} of ${seq}`)
        await new Promise<void>((r) => {
          wake = r
          setTimeout(r, 200).unref()
        })
      }
    },
  }
}

async function info(url: string): Promise<{ head: number; publicKey: string }> {
  const body = (await (await fetch(`${url}/info`)).json()) as { events: { head: string }; publicKey: string }
  return { head: Number(body.events.head), publicKey: body.publicKey }
}

if (await requirePostgres(t)) {
t.test('three instances: one key, one gapless log, every subscriber on every instance sees the same sequence', async (t) => {
  const servers = await instances(t, 3)
  const keys = new Set(await Promise.all(servers.map(async (s) => (await info(s.url)).publicKey)))
  t.equal(keys.size, 1, 'every instance serves the key the first one generated')

  const users: HomeserverClient[] = []
  for (let i = 0; i < 3; i++) {
    const c = new HomeserverClient(servers[i]!.url, randomKeypair())
    await c.signup()
    users.push(c)
  }
  // early subscribers, from the start, one per instance
  const early = servers.map((s) => follow(s.url, 0))
  const WRITES = 240
  const on = (i: number, client: HomeserverClient) => new HomeserverClient(servers[i % 3]!.url, client.keypair, client.session)
  let i = 0
  const acked: string[] = []
  const unexpected: string[] = []
  const worker = async () => {
    while (i < WRITES) {
      const n = i++
      const client = on(n, users[n % 3]!)
      const path = `/pub/m/${n % 40}`
      if (n % 7 === 6) {
        const res = await client.request('DELETE', path)
        if (res.status === 204) acked.push(`DEL ${client.user}${path}`)
        else if (res.status !== 404) unexpected.push(`DELETE ${path}: ${res.status}`)
      } else {
        await client.put(path, `write ${n}`)
        acked.push(`PUT ${client.user}${path}`)
      }
    }
  }
  // late subscribers, at random cursors, joining while writes go on
  const late: ReturnType<typeof follow>[] = []
  const joining = (async () => {
    for (let k = 0; k < 6; k++) {
      const s = servers[k % 3]!
      const head = (await info(s.url)).head
      late.push(follow(s.url, Math.floor(Math.random() * (head + 1))))
    }
  })()
  await Promise.all([worker(), worker(), worker(), worker(), worker(), worker(), joining])
  t.same(unexpected, [], 'every DELETE answered 204, or 404 for a file already gone')
  const heads = await Promise.all(servers.map(async (s) => (await info(s.url)).head))
  const head = Math.max(...heads)
  t.equal(head, acked.length, 'one event per acknowledged write, no gap')
  for (const f of [...early, ...late]) await f.until(head)
  const reference = early[0]!.events.map((e) => `${e.seq} ${e.type} ${e.user}${e.path}`)
  t.same(reference.map((l) => Number(l.split(' ')[0])), Array.from({ length: head }, (_, k) => k + 1), 'seqs 1..head in order')
  t.same(reference.map((l) => l.split(' ').slice(1).join(' ')).sort(), [...acked].sort(), 'exactly the acknowledged writes')
  for (const f of [...early, ...late]) {
    const first = f.events[0] === undefined ? head : Number(f.events[0].seq) - 1
    t.same(f.events.map((e) => `${e.seq} ${e.type} ${e.user}${e.path}`), reference.slice(first), `a subscriber from ${first} got the same gapless tail`)
    f.close()
  }
})

t.test('across instances: a signup token redeems once, an AuthToken is accepted once, sign-out is seen everywhere', async (t) => {
  const [a, b, c] = await instances(t, 3, { SIGNUP_MODE: 'token', ADMIN_PASSWORD: ADMIN })
  const token = await (await fetch(`${a!.url}/admin/generate_signup_token`, { headers: { 'x-admin-password': ADMIN } })).text()
  const x = new HomeserverClient(a!.url, randomKeypair())
  const y = new HomeserverClient(b!.url, randomKeypair())
  const results = await Promise.allSettled([x.signup({ signupToken: token }), y.signup({ signupToken: token })])
  t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'one of two racing sign-ups wins')
  const winner = results[0]!.status === 'fulfilled' ? x : y

  // one AuthToken: accepted by one instance, refused by the others and after a restart
  const bytes = Buffer.from(signAuthToken(winner.keypair, '/:rw'))
  const post = (url: string) => fetch(`${url}/session`, { method: 'POST', body: bytes })
  const first = await post(a!.url)
  t.equal(first.status, 200, 'the first use signs in')
  t.equal((await post(b!.url)).status, 400, 'replayed on another instance: refused')
  await c!.restart()
  t.equal((await post(c!.url)).status, 400, 'replayed after a restart: refused')

  // a session made on one instance works on the others, until it signs out anywhere
  const session = first.headers.getSetCookie()[0]!.split(';')[0]!.split('=')[1]!
  const onB = new HomeserverClient(b!.url, winner.keypair, session)
  const onC = new HomeserverClient(c!.url, winner.keypair, session)
  t.equal((await onB.request('PUT', '/pub/s.txt', 'on b')).status, 201)
  const priv = await RawStream.open(`${a!.url}/subscribe/${winner.user}/priv/*`, { cookie: `${winner.user}=${session}` })
  t.equal(priv.response.status, 200)
  await onB.put('/priv/x.txt', 'private')
  await t.resolves(priv.until((f) => f.some((x) => x.event === 'PUT')), 'a private stream on a sees a private write made on b')
  await onC.signout()
  t.equal((await onB.request('PUT', '/pub/s.txt', 'again')).status, 401, 'signed out on c: refused on b')
  await t.resolves(priv.all(10_000), 'and the private stream that session opened on a ends')
})

t.test('a sign-out heard on one instance between its session check and its registering of a private stream: the stream ends', async (t) => {
  // a is reached directly, b through a proxy that can hold b's database answers back
  const url = await freshDatabase(t)
  const a = await startTestServer(t, { DATABASE_URL: url })
  const proxy = await PgProxy.start(t, url)
  const b = await startTestServer(t, { DATABASE_URL: proxy.url })
  const owner = new HomeserverClient(a.url, randomKeypair())
  await owner.signup()
  const signedOut = new HomeserverClient(a.url, owner.keypair)
  await signedOut.signin()
  const secret = signedOut.session!
  // b's own listeners first: once this one hears, b has ended every stream it had for the session
  let heard = false
  t.teardown(b.ctx.sessions.onSignOut((s) => void (heard ||= s === secret)))
  // every look-up of a session answers with a row description naming its columns
  const lookups = () => proxy.answered('capabilities')
  const before = lookups()
  // the stream's check reads the session while it is there; its answer waits at the proxy
  proxy.hold()
  const opening = RawStream.open(`${b.url}/subscribe/${owner.user}/*`, { cookie: `${owner.user}=${secret}` })
  await until(() => lookups() > before, "b's check of the stream's session", 10_000, lookups)
  await signedOut.signout()
  await until(() => heard, 'b to hear of the sign-out', 10_000)
  proxy.release()
  const stream = await opening
  t.equal(stream.response.status, 200, 'the check read a live session')
  // registered after b ended the session's streams: only a check of its own can end it (until
  // it answers, an event committed meanwhile still reaches the stream: SPEC §4 allows a second)
  await stream.all(10_000).catch(() => {})
  t.ok(stream.ended, 'the stream opened with the signed-out session ended')
  stream.close()
})
}
