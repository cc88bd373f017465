import t from 'tap'
import { buildConfig } from '../src/config/config.js'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { openSse, type StreamEvent } from './helpers/sse.js'
import { headOf, newUser, startTestServer, tempDir } from './helpers/server.js'
import { caughtUp, checkRelayLog, fromHomeserver, pinned, relayInfo, startTestRelay, wholeLog, type RelayInfo } from './helpers/relay.js'
import { TcpProxy } from './helpers/tcp-proxy.js'
import { TEST_ENGINE } from './helpers/engine.js'
import { until } from './helpers/until.js'
import { Scrape } from './helpers/prometheus.js'

const keyOf = (s: { ctx: { keypair: { z32: string } }; url: string }) => ({ url: s.url, key: s.ctx.keypair.z32 })

t.test('three homeservers, one relay: every filter gets its events once, in relay order', async (t) => {
  const hs = await Promise.all([0, 1, 2].map(() => startTestServer(t)))
  const alice = await newUser(hs[0]!)
  // one user on two homeservers
  const aliceThere = new HomeserverClient(hs[1]!.url, alice.keypair)
  await aliceThere.signup()
  const bob = await newUser(hs[1]!)
  const carol = await newUser(hs[2]!)
  const relay = await startTestRelay(t, hs.map(pinned))

  const filters: [string, (e: StreamEvent) => boolean][] = [
    ['', () => true],
    [`${alice.user}/*`, (e) => e.user === alice.user],
    ['*/pub/app/posts/*', (e) => e.path.startsWith('/pub/app/posts/')],
    [`${bob.user}/pub/app/posts/*`, (e) => e.user === bob.user && e.path.startsWith('/pub/app/posts/')],
    [`${carol.user}/pub/x/3`, (e) => e.user === carol.user && e.path === '/pub/x/3'],
  ]
  const subscribers: { filter: string; accepts: (e: StreamEvent) => boolean; after: number; events: StreamEvent[] }[] = []
  const subscribe = async (i: number) => {
    const [filter, accepts] = filters[i % filters.length]!
    // a random cursor between the start and the relay's head now
    const after = Math.floor(Math.random() * (relay.ctx.events.head + 1))
    const sub = { filter, accepts, after, events: [] as StreamEvent[] }
    const conn = openSse(`${relay.url}/subscribe${filter === '' ? '' : `/${filter}`}?lastSeq=${after}`, {}, (f) => {
      if (f.event === 'PUT' || f.event === 'DEL') sub.events.push(JSON.parse(f.data!) as StreamEvent)
    })
    t.teardown(() => conn.close())
    t.equal((await conn.response).statusCode, 200)
    subscribers.push(sub)
  }

  const writers: [HomeserverClient, (i: number) => string][] = [
    [alice, (i) => `/pub/app/posts/${i}`],
    [aliceThere, (i) => `/pub/app/notes/${i}`],
    [bob, (i) => `/pub/app/posts/${i}`],
    [carol, (i) => (i % 2 === 0 ? `/pub/app/posts/${i}` : `/pub/x/${i % 5}`)],
  ]
  const N = 40
  let joined = 0
  await Promise.all(writers.map(async ([client, path], w) => {
    for (let i = 0; i < N; i++) {
      if (i % 7 === 6) await client.delete(path(i - 1))
      else await client.put(path(i), `w${w} ${i}`)
      // subscribers join while everything is being written
      if (w === 0 && i % 4 === 0) await subscribe(joined++)
    }
  }))
  await caughtUp(relay.url, hs.map(pinned))
  const log = await checkRelayLog(t, relay.url, hs.map(keyOf))

  for (const sub of subscribers) {
    const want = log.filter((e) => Number(e.seq) > sub.after && sub.accepts(e))
    await until(() => sub.events.length >= want.length, `${want.length} events for filter '${sub.filter}' after ${sub.after}`, 30_000, () => sub.events.length)
    t.same(sub.events, want, `filter '${sub.filter}' from ${sub.after}: exactly its events, once, in relay order`)
  }
  t.ok(subscribers.length >= filters.length, 'every filter form was followed')

  const aliceStream = await wholeLog(relay.url, `${alice.user}/*`)
  t.same(aliceStream, log.filter((e) => e.user === alice.user), `${alice.user}/* holds all of her events`)
  t.same([...new Set(aliceStream.map((e) => e.homeserver))].sort(), [hs[0]!.ctx.keypair.z32, hs[1]!.ctx.keypair.z32].sort(),
    'a user writing to two homeservers is one stream on the relay')

  const lines = (await (await fetch(`${relay.url}/events/?limit=1000`)).text()).split('\n')
  t.same(lines, [...log.map((e) => `${e.type} ${e.uri}`), `cursor: ${log.length}`], '/events/ serves the same log')

  const info = await relayInfo(relay.url)
  t.same(info.upstreams.map((u) => [u.upstream, u.homeserver, u.state]), hs.map((s) => [pinned(s), s.ctx.keypair.z32, 'live']))
  const doc = (await (await fetch(`${relay.url}/openapi.json`)).json()) as { paths: Record<string, unknown> }
  t.same(Object.keys(doc.paths).sort(), ['/events/', '/healthz', '/info', '/openapi.json', '/readyz', '/subscribe', '/subscribe/{filter}', '/{path}'],
    "the relay's API description names its routes, and no storage or auth route")
  t.equal((await fetch(`${relay.url}/pub/x`, { method: 'PUT', body: 'x' })).status, 404, 'a relay stores nothing')
  t.same(info.upstreams.map((u) => u.lag), [0, 0, 0], 'no lag once caught up')
})

t.test('an upstream that goes away is retried while the others go on; back, its events come once', async (t) => {
  const hsDir = tempDir(t)
  // keepalives every 300 ms, so a stream silent for a second is dropped as hung
  const quick = { KEEPALIVE_MS: '300' }
  let hs0 = await startTestServer(t, { DATA_DIR: hsDir, ...quick })
  const database = hs0.ctx.config.databaseUrl
  const hs1 = await startTestServer(t, quick)
  const proxy = await TcpProxy.start(t, hs0.url)
  const a = await newUser(hs0)
  const b = await newUser(hs1)
  // the homeserver keeps its key across the restart below, so its pin behind the proxy holds
  const behind = `${hs0.ctx.keypair.z32}@${proxy.url}`
  const relay = await startTestRelay(t, [behind, pinned(hs1)], { RELAY_IDLE_MS: '1500' })
  for (let i = 0; i < 5; i++) await Promise.all([a.put(`/pub/a/${i}`, 'x'), b.put(`/pub/b/${i}`, 'y')])
  await caughtUp(relay.url, [behind, pinned(hs1)])

  proxy.mode = 'refuse'
  await until(async () => {
    const u = (await relayInfo(relay.url)).upstreams[0]!
    return u.faults.unreachable >= 1 && u.state !== 'live'
  }, 'the relay to see the upstream gone')
  for (let i = 5; i < 15; i++) await b.put(`/pub/b/${i}`, 'y')
  await caughtUp(relay.url, [pinned(hs1)])
  t.pass('the other upstream went on while one was gone')

  // the homeserver restarts (on a new port) behind the same address, and writes on
  await hs0.close()
  hs0 = await startTestServer(t, { DATA_DIR: hsDir, ...quick, ...(database === undefined ? {} : { DATABASE_URL: database }) })
  proxy.target = hs0.url
  proxy.mode = 'pass'
  const a2 = new HomeserverClient(hs0.url, a.keypair, a.session)
  for (let i = 5; i < 10; i++) await a2.put(`/pub/a/${i}`, 'x')
  await caughtUp(relay.url, [behind, pinned(hs1)])
  await checkRelayLog(t, relay.url, [{ url: hs0.url, key: hs0.ctx.keypair.z32 }, keyOf(hs1)])

  // a server that accepts and never answers is dropped after RELAY_IDLE_MS, then followed again
  proxy.mode = 'silent'
  // cutting the connection drops it at once; the next attempt meets a server that says nothing
  await until(async () => /no answer within 1500 ms/.test((await relayInfo(relay.url)).upstreams[0]!.lastError ?? ''),
    'the silent upstream to be dropped for saying nothing')
  proxy.mode = 'pass'
  await a2.put('/pub/a/after-silence', 'x')
  await caughtUp(relay.url, [behind])
  await checkRelayLog(t, relay.url, [{ url: hs0.url, key: hs0.ctx.keypair.z32 }, keyOf(hs1)])
})

t.test('an upstream that pruned past the cursor: recorded, counted, and followed on from its floor', async (t) => {
  const hs = await startTestServer(t, { EVENT_RETENTION: '5' })
  const user = await newUser(hs)
  const dir = tempDir(t)
  let relay = await startTestRelay(t, [pinned(hs)], { DATA_DIR: dir })
  const database = relay.ctx.config.databaseUrl
  for (let i = 0; i < 3; i++) await user.put(`/pub/r/${i}`, 'x')
  await caughtUp(relay.url, [pinned(hs)])
  await relay.close()

  for (let i = 3; i < 20; i++) await user.put(`/pub/r/${i}`, 'x')
  await hs.ctx.retention!.sweep()
  const floor = hs.ctx.events.floor
  t.ok(floor > 4, `the homeserver pruned past the relay's cursor (floor ${floor})`)

  relay = await startTestRelay(t, [pinned(hs)], { DATA_DIR: dir, METRICS_PORT: '0', ...(database === undefined ? {} : { DATABASE_URL: database }) })
  await caughtUp(relay.url, [pinned(hs)])
  const u = (await relayInfo(relay.url)).upstreams[0]!
  t.equal(u.resets, 1, '/info counts the reset')
  const mine = fromHomeserver(await wholeLog(relay.url), hs.ctx.keypair.z32)
  const head = await headOf(hs.url)
  t.same(mine.originSeqs, [1, 2, 3, ...Array.from({ length: head - floor + 1 }, (_, i) => floor + i)], 'what was relayed, then everything from the floor')
  const scrape = await Scrape.of(relay.metricsUrl!)
  t.equal(scrape.value('hearth_relay_upstream_resets_total', { upstream: pinned(hs) }), 1, 'and so does the metric')
  t.equal(scrape.value('hearth_relay_upstream_state', { upstream: pinned(hs), state: 'live' }), 1)
  t.equal(scrape.value('hearth_relay_upstream_cursor', { upstream: pinned(hs) }), head)
})

t.test('an upstream URL is kept as its origin: one server, one spelling, one cursor', async (t) => {
  const key = randomKeypair().z32
  const config = buildConfig({ RELAY_UPSTREAMS: `HTTP://LocalHost:80/,http://localhost,https://Example.test:443,${key}@HTTPS://Example.test/,${key}` })
  t.same(config.relay.upstreams, ['http://localhost', 'https://example.test', `${key}@https://example.test`, key])
  for (const bad of [`${key}@`, `@http://localhost`, `${key.slice(1)}@http://localhost`, `${key}@http://localhost/path`, `${key}@${key}`, 'http://user@localhost']) {
    t.throws(() => buildConfig({ RELAY_UPSTREAMS: bad }), { message: /RELAY_UPSTREAMS.*<key>@http/ }, `${bad} is refused`)
  }
})

t.test('an upstream given as a homeserver key is resolved through pkarr', async (t) => {
  const hs = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '0' })
  const user = await newUser(hs)
  const key = hs.ctx.keypair.z32
  const relay = await startTestRelay(t, [key], { PKARR_RELAYS: hs.relays[0]! })
  for (let i = 0; i < 3; i++) await user.put(`/pub/k/${i}`, 'x')
  let info: RelayInfo | undefined
  await until(async () => {
    info = await relayInfo(relay.url)
    return info.upstreams[0]!.cursor === '3'
  }, 'the relay to follow the homeserver found through pkarr', 30_000, () => info?.upstreams[0])
  t.equal(info!.upstreams[0]!.url, `http://localhost:${new URL(hs.url).port}`, 'the URL comes from the signed packet')
  t.equal(info!.upstreams[0]!.homeserver, key)
  t.same(fromHomeserver(await wholeLog(relay.url), key).originSeqs, [1, 2, 3])
})

t.test('an upstream key that no pkarr relay knows is retried, and counted', async (t) => {
  const hs = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '0' })
  const unknown = (await newUser(hs)).user // a key with no packet anywhere
  const relay = await startTestRelay(t, [unknown], { PKARR_RELAYS: hs.relays[0]! })
  let info: RelayInfo | undefined
  await until(async () => {
    info = await relayInfo(relay.url)
    // one snapshot that shows both: the state moves on to `connecting` at each retry
    return info.upstreams[0]!.faults.unreachable >= 2 && info.upstreams[0]!.state === 'failed'
  }, 'the unresolvable upstream to be tried twice, and seen failed between tries', 30_000, () => info?.upstreams[0])
  t.match(info!.upstreams[0]!.lastError, /cannot resolve/)
})

t.test('two relay processes on one PostgreSQL database serve one log', async (t) => {
  if (TEST_ENGINE !== 'postgres') return t.plan(0, 'PostgreSQL only: one LevelDB folder has one process')
  const hs = await Promise.all([0, 1].map(() => startTestServer(t)))
  const users = await Promise.all(hs.map((s) => newUser(s)))
  const one = await startTestRelay(t, hs.map(pinned))
  const two = await startTestRelay(t, hs.map(pinned), { DATABASE_URL: one.ctx.config.databaseUrl! })
  await Promise.all(users.map(async (u) => {
    for (let i = 0; i < 30; i++) await u.put(`/pub/two/${i}`, 'x')
  }))
  await caughtUp(one.url, hs.map(pinned))
  await caughtUp(two.url, hs.map(pinned))
  const log = await checkRelayLog(t, one.url, hs.map(keyOf))
  // the second learns of the first's commits by notification: wait for its log to say so
  await until(async () => (await headOf(two.url)) === log.length, `the second relay's head to reach ${log.length}`)
  t.same(await wholeLog(two.url), log, 'both serve the same log')
})
