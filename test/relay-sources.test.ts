import { randomBytes } from 'node:crypto'
import t from 'tap'
import { FakeUpstream, GOOD } from './helpers/fake-upstream.js'
import { caughtUp, checkRelayLog, fromHomeserver, originView, pinned, relayInfo, startTestRelay, wholeLog, type RelayInfo } from './helpers/relay.js'
import { headOf, newUser, startTestServer, tempDir } from './helpers/server.js'
import { TcpProxy } from './helpers/tcp-proxy.js'
import { until } from './helpers/until.js'

/*
 * What a relay trusts an upstream to speak for, and whose cursor is whose. A homeserver's
 * `/info` is unsigned: the key it names is taken only when the operator pinned it, or the key's
 * own pkarr record names that URL. Each source keeps its own cursor, moved only by what it sent.
 */

type Upstreams = RelayInfo['upstreams']

/** Reads the relay's /info until `ready` holds, or fails naming `what` and the last upstreams seen. */
async function infoWhen(url: string, what: string, ready: (u: Upstreams) => boolean): Promise<Upstreams> {
  let seen: Upstreams = []
  await until(async () => ready((seen = (await relayInfo(url)).upstreams)), what, 30_000, () => seen.map((u) => [u.upstream, u.cursor, u.faults, u.lastError]))
  return seen
}

t.test('a URL whose /info claims a genuine key is refused and stores nothing; the genuine one, proven by its pkarr record, relays on', async (t) => {
  const hs = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '0' })
  const key = hs.ctx.keypair.z32
  const user = await newUser(hs)
  for (let i = 0; i < 5; i++) await user.put(`/pub/real/${i}`, 'x')
  // it names the genuine key and would send forged events as that homeserver's
  const impostor = await FakeUpstream.start(t, 'good', key)
  // what the signed record names: localhost and the HTTP port
  const genuine = `http://localhost:${new URL(hs.url).port}`
  const relay = await startTestRelay(t, [impostor.url, genuine], { PKARR_RELAYS: hs.relays[0]! })

  const [fake, real] = await infoWhen(relay.url, 'the impostor refused twice, the genuine upstream at 5',
    ([fake, real]) => fake!.faults.unproven >= 2 && real!.cursor === '5')
  t.equal(fake!.lastError, `${impostor.url}/info claims ${key}, unproven: its pkarr record names ${genuine}`, 'the refusal says what was claimed and why it does not hold')
  t.ok(fake!.lastError!.length <= 200, 'in one short line')
  t.equal(fake!.homeserver, null, 'a claimed key is not shown as its homeserver')
  t.equal(impostor.subscribes, 0, 'nothing was ever asked of it beyond /info')
  t.equal(real!.homeserver, key)

  for (let i = 5; i < 10; i++) await user.put(`/pub/real/${i}`, 'x')
  await caughtUp(relay.url, [genuine])
  t.same(await relay.ctx.store.upstreamCursors(), [{ upstream: genuine, homeserver: key, cursor: 10 }], 'one cursor: the genuine source, at its own head')
  await checkRelayLog(t, relay.url, [{ url: hs.url, key }])
  t.equal((await relayInfo(relay.url)).upstreams[0]!.faults.unproven >= 2, true, 'and the impostor is still refused')
})

t.test('a pinned URL is followed on its pin alone; a pin its /info contradicts, and a bare URL nothing proves, are refused', async (t) => {
  const hs = await startTestServer(t)
  const key = hs.ctx.keypair.z32
  const user = await newUser(hs)
  for (let i = 0; i < 3; i++) await user.put(`/pub/p/${i}`, 'x')
  const honest = await FakeUpstream.start(t, 'good') // names its own key, though pinned to the genuine one
  const impostor = await FakeUpstream.start(t, 'good', key)
  // no pkarr relays: a pin is all there is to go by
  const relay = await startTestRelay(t, [`${key}@${honest.url}`, impostor.url, pinned(hs)])

  const [wrong, bare] = await infoWhen(relay.url, 'both refused twice, the pinned homeserver at 3',
    ([wrong, bare, real]) => wrong!.faults['key-changed'] >= 2 && bare!.faults.unproven >= 2 && real!.cursor === '3')
  t.equal(wrong!.lastError, `${honest.url}/info names ${honest.key}, but this upstream is ${key}`)
  t.equal(bare!.lastError, `${impostor.url}/info claims ${key}, unproven: no pkarr relays to check its record (PKARR_RELAYS); pin it as <key>@<url>`)
  t.same([honest.subscribes, impostor.subscribes], [0, 0], 'neither was followed')
  t.same(await relay.ctx.store.upstreamCursors(), [{ upstream: hs.url, homeserver: key, cursor: 3 }], 'only the pinned source has a cursor')
  await checkRelayLog(t, relay.url, [{ url: hs.url, key }])
})

t.test('two sources proven for one homeserver: one follows it, the other is refused naming it; one cursor, every event once', async (t) => {
  const hs = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '0' })
  const key = hs.ctx.keypair.z32
  const user = await newUser(hs)
  for (let i = 0; i < 5; i++) await user.put(`/pub/d/${i}`, 'x')
  // the same server pinned by URL, and by its key resolved through pkarr
  const relay = await startTestRelay(t, [pinned(hs), key], { PKARR_RELAYS: hs.relays[0]! })

  const upstreams = await infoWhen(relay.url, 'one upstream at 5, the other refused twice',
    (us) => us.some((u) => u.cursor === '5') && us.some((u) => u.faults.duplicate >= 2))
  const follows = upstreams.find((u) => u.faults.duplicate === 0)!
  const refused = upstreams.find((u) => u !== follows)!
  t.equal(refused.lastError, `${key} is already followed through ${follows.upstream}`, 'the refusal names the upstream that holds the key')
  t.equal(refused.homeserver, null)
  t.equal(refused.cursor, '0')
  const rows = await relay.ctx.store.upstreamCursors()
  t.same(rows.map((r) => [r.homeserver, r.cursor]), [[key, 5]], 'one cursor, never shared or merged')
  await checkRelayLog(t, relay.url, [{ url: hs.url, key }])
})

t.test("a cursor moves only with what its own source sent: a wrong pin replaced by the right one starts from the right one's own", async (t) => {
  const hs = await startTestServer(t)
  const key = hs.ctx.keypair.z32
  const user = await newUser(hs)
  for (let i = 0; i < 10; i++) await user.put(`/pub/own/${i}`, 'x')
  // an operator's mistake: an impostor pinned to the genuine key relays its forged events
  const impostor = await FakeUpstream.start(t, 'good', key)
  const dir = tempDir(t)
  let relay = await startTestRelay(t, [impostor.pinned], { DATA_DIR: dir })
  const database = relay.ctx.config.databaseUrl
  await infoWhen(relay.url, `the pinned impostor's ${GOOD} events relayed`, ([u]) => u!.cursor === String(GOOD))
  await relay.close()

  // the pin is put right; what the impostor sent moves nothing of the genuine source
  relay = await startTestRelay(t, [pinned(hs)], { DATA_DIR: dir, ...(database === undefined ? {} : { DATABASE_URL: database }) })
  await caughtUp(relay.url, [pinned(hs)])
  const [real] = (await relayInfo(relay.url)).upstreams
  t.equal(real!.cursor, '10')
  t.equal(real!.resets, 0, 'no rewind: its cursor never stood past its own upstream')
  const mine = fromHomeserver(await wholeLog(relay.url), key)
  t.same(mine.originSeqs, [1, 2, 3, ...Array.from({ length: 10 }, (_, i) => i + 1)], 'the forged events stay as they were relayed, then every genuine one')
  t.same(originView(mine.events.slice(GOOD)), originView(await wholeLog(hs.url)), 'the genuine events, all of them')
  const rows = (await relay.ctx.store.upstreamCursors()).sort((a, b) => a.cursor - b.cursor)
  t.same(rows, [{ upstream: impostor.url, homeserver: key, cursor: GOOD }, { upstream: hs.url, homeserver: key, cursor: 10 }], 'each source its own cursor')
})

t.test("an upstream whose head falls behind the relay's cursor (reinstalled with its key) is relayed again from its start, not waited for", async (t) => {
  const secret = randomBytes(32).toString('hex')
  const first = await startTestServer(t, { HOMESERVER_SECRET_KEY: secret })
  const key = first.ctx.keypair.z32
  const proxy = await TcpProxy.start(t, first.url)
  const behind = `${key}@${proxy.url}`
  const relay = await startTestRelay(t, [behind])
  const before = await newUser(first)
  for (let i = 0; i < 5; i++) await before.put(`/pub/old/${i}`, 'x')
  await caughtUp(relay.url, [behind])

  // the same key, an empty log, behind the same address
  const second = await startTestServer(t, { HOMESERVER_SECRET_KEY: secret })
  proxy.target = second.url
  const after = await newUser(second)
  for (let i = 0; i < 2; i++) await after.put(`/pub/new/${i}`, 'x')
  await infoWhen(relay.url, "the relay to relay the reinstalled homeserver's events", ([u]) => u!.cursor === '2' && u!.state === 'live')
  for (let i = 2; i < 4; i++) await after.put(`/pub/new/${i}`, 'x')
  await caughtUp(relay.url, [behind])

  const [u] = (await relayInfo(relay.url)).upstreams
  t.equal(u!.resets, 1, 'the rewind is counted, once')
  t.equal(u!.cursor, String(await headOf(second.url)), 'the cursor is the upstream\'s own head again')
  const mine = fromHomeserver(await wholeLog(relay.url), key)
  t.same(mine.originSeqs, [1, 2, 3, 4, 5, 1, 2, 3, 4], 'what was relayed stays; the new log comes whole, from its start')
  t.same(originView(mine.events.slice(5)), originView(await wholeLog(second.url)), 'the same events as the reinstalled homeserver holds')
})
