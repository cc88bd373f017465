import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomKeypair } from '../src/auth/keys.js'
import { CLASS_IN, TYPE_HTTPS, encodeMessage, encodeSvcb } from '../src/pkarr/dns.js'
import { homeserverPacket, signPacket } from '../src/pkarr/packet.js'
import { FakeUpstream, GOOD } from './helpers/fake-upstream.js'
import { Person, pkarrNet } from './helpers/people.js'
import { relayInfo, startTestRelay, wholeLog, type RelayInfo } from './helpers/relay.js'
import { openSse, type StreamEvent } from './helpers/sse.js'
import type { SseFrame } from './helpers/sse-frames.js'
import { until } from './helpers/until.js'
import { Scrape } from './helpers/prometheus.js'
import type { Teardown } from './helpers/server.js'

/** A signed `_pubky` record naming `homeserver`, as the official client publishes one. */
async function publishUserRecord(pkarr: string, secretKey: Uint8Array, user: string, homeserver: string): Promise<void> {
  const rdata = encodeSvcb({ priority: 0, target: homeserver, params: new Map() })
  const payload = signPacket(secretKey, encodeMessage([{ name: `_pubky.${user}`, type: TYPE_HTTPS, class: CLASS_IN, ttl: 60, rdata }]))
  const res = await fetch(`${pkarr}/${user}`, { method: 'PUT', body: payload })
  if (res.status !== 204) throw new Error(`the pkarr relay answered ${res.status}`)
}

/** A homeserver record for `secretKey`'s key naming `host` (anything, hostile included). */
async function publishHomeserver(pkarr: string, secretKey: Uint8Array, host: string, port: number): Promise<void> {
  const packet = homeserverPacket(secretKey, { host, port })
  const res = await fetch(`${pkarr}/${packet.z32}`, { method: 'PUT', body: packet.payload })
  if (res.status !== 204) throw new Error(`the pkarr relay answered ${res.status}`)
}

/** An HTTP server that counts what reaches it and answers `body`. */
async function counting(t: Teardown, body: () => Uint8Array | string = () => 'secret'): Promise<{ url: string; port: number; requests: string[] }> {
  const requests: string[] = []
  const server = http.createServer((req, res) => {
    requests.push(req.url!)
    res.end(body())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  const port = (server.address() as AddressInfo).port
  return { url: `http://127.0.0.1:${port}`, port, requests }
}

/** A subscriber's stream on a relay, every frame kept. */
function watch(t: Teardown, url: string): { frames: SseFrame[]; events: () => StreamEvent[]; close(): void; status: Promise<number> } {
  const frames: SseFrame[] = []
  const conn = openSse(url, {}, (f) => frames.push(f))
  t.teardown(() => conn.close())
  return {
    frames,
    events: () => frames.filter((f) => f.event === 'PUT' || f.event === 'DEL').map((f) => JSON.parse(f.data!) as StreamEvent),
    close: () => conn.close(),
    status: conn.response.then((r) => r.statusCode!),
  }
}

const unresolved = (frames: SseFrame[]) => frames.filter((f) => f.event === 'unresolved').map((f) => JSON.parse(f.data!) as { user: string; reason: string })

t.test('a user with no record, or a record that does not verify, is reported on the stream as unresolved, and tried again', async (t) => {
  const net = await pkarrNet(t, 1)
  const nobody = randomKeypair().z32
  const relay = await startTestRelay(t, [], { PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1' })
  const s = watch(t, `${relay.url}/subscribe/${nobody}/*`)
  t.equal(await s.status, 200)
  await until(() => unresolved(s.frames).length >= 1, 'the stream to say the user is unresolved')
  t.same(unresolved(s.frames)[0], { user: nobody, reason: 'no-record' })
  let info: RelayInfo | undefined
  await until(async () => (info = await relayInfo(relay.url)).following.resolutionFailures['no-record']! >= 2, 'the record to be read again', 30_000, () => info?.following)
  t.equal(info!.following.unresolved, 1)
  t.equal(unresolved(s.frames).length, 1, 'the stream is told once, not at every try')
  t.same(info!.following.homeservers, [], 'nothing is asked of any homeserver')

  // a pkarr relay that answers bytes that are no signed packet: the record does not verify
  const forger = await counting(t, () => new Uint8Array(200).fill(7))
  const second = await startTestRelay(t, [], { PKARR_RELAYS: `${forger.url},${net.pkarr}`, RELAY_ALLOW_PRIVATE_ADDRESSES: '1' })
  const s2 = watch(t, `${second.url}/subscribe/${nobody}/*`)
  await until(() => unresolved(s2.frames).length >= 1, 'the stream to say the record does not verify')
  t.same(unresolved(s2.frames)[0], { user: nobody, reason: 'invalid-record' })
})

t.test('record targets are host names, private addresses are refused unless allowed, and redirects are not followed', async (t) => {
  const net = await pkarrNet(t, 1)
  const internal = await counting(t)
  // a homeserver record whose target is a URL in disguise, and a user whose record names it
  const hostile = randomKeypair()
  await publishHomeserver(net.pkarr, hostile.secretKey, `127.0.0.1:${internal.port}/internal/admin?x=`, internal.port)
  const victim = randomKeypair()
  await publishUserRecord(net.pkarr, victim.secretKey, victim.z32, hostile.z32)
  // a real user of a homeserver on this machine: its record names localhost
  const local = new Person(net)
  await local.signup(net.homeservers[0]!)

  const relay = await startTestRelay(t, [], { PKARR_RELAYS: net.pkarr })
  const s = watch(t, `${relay.url}/subscribe?filter=${victim.z32}/*&filter=${local.user}/*`)
  await until(() => new Set(unresolved(s.frames).map((u) => u.user)).size === 2, 'both users to be reported unresolved', 30_000, () => s.frames)
  const reasons = Object.fromEntries(unresolved(s.frames).map((u) => [u.user, u.reason]))
  t.same(reasons, { [victim.z32]: 'unreachable', [local.user]: 'refused-address' })
  t.same(internal.requests, [], 'nothing reached the service the record pointed at')
  t.same((await relayInfo(relay.url)).following.homeservers, [], 'no stream to either')

  // a homeserver that answers a redirect to that service is not followed there
  const redirecting = await FakeUpstream.start(t, 'redirect')
  redirecting.internal = internal.url
  await publishHomeserver(net.pkarr, redirecting.keypair.secretKey, 'localhost', Number(new URL(redirecting.url).port))
  const lured = randomKeypair()
  await publishUserRecord(net.pkarr, lured.secretKey, lured.z32, redirecting.key)
  const allowed = await startTestRelay(t, [], { PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1' })
  watch(t, `${allowed.url}/subscribe/${lured.z32}/*`)
  let info: RelayInfo | undefined
  await until(async () => ((info = await relayInfo(allowed.url)).following.homeservers[0]?.streams[0]?.faults.protocol ?? 0) >= 2,
    'the redirecting homeserver to be dropped, and tried again', 30_000, () => info?.following)
  t.match(info!.following.homeservers[0]!.streams[0]!.lastError, /redirect/)
  t.same(internal.requests, [], 'the redirect was not followed')
})

t.test('events a homeserver sends for users nobody asked it about are dropped and counted', async (t) => {
  const net = await pkarrNet(t, 1)
  const fake = await FakeUpstream.start(t, 'good')
  await publishHomeserver(net.pkarr, fake.keypair.secretKey, 'localhost', Number(new URL(fake.url).port))
  const asked = randomKeypair()
  await publishUserRecord(net.pkarr, asked.secretKey, asked.z32, fake.key)
  const relay = await startTestRelay(t, [], { PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1' })
  watch(t, `${relay.url}/subscribe/${asked.z32}/*`)
  let info: RelayInfo | undefined
  await until(async () => (info = await relayInfo(relay.url)).following.dropped.unasked! >= GOOD, 'the other user\'s events to be dropped', 30_000, () => info?.following)
  t.equal(info!.following.homeservers[0]!.homeserver, fake.key)
  t.same(info!.following.homeservers[0]!.streams.map((s) => s.filters), [[`${asked.z32}/*`]], 'the stream asked only for the user wanted')
  t.same(await wholeLog(relay.url), [], 'nothing was stored')
})

t.test('a homeserver that sends a user\'s events past where it stood when the user moved away has them dropped as elsewhere', async (t) => {
  const net = await pkarrNet(t, 1)
  // the old homeserver names head 3, sends its first event, and holds the rest until told
  const old = await FakeUpstream.start(t, 'held')
  const next = await FakeUpstream.start(t, 'good')
  for (const hs of [old, next]) await publishHomeserver(net.pkarr, hs.keypair.secretKey, 'localhost', Number(new URL(hs.url).port))
  const user = old.userKeypair
  await publishUserRecord(net.pkarr, user.secretKey, user.z32, old.key)
  const relay = await startTestRelay(t, [], {
    PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1', RELAY_RECORD_MIN_MS: '100', RELAY_RECORD_MAX_MS: '200',
  })
  watch(t, `${relay.url}/subscribe/${user.z32}/*`)
  await until(async () => (await wholeLog(relay.url)).length === 1, 'the first event, from the old homeserver')

  // the user moves; the relay asks the old homeserver where its log stands (3), to read it up to there
  await publishUserRecord(net.pkarr, user.secretKey, user.z32, next.key)
  let info: RelayInfo | undefined
  await until(async () => (info = await relayInfo(relay.url)).following.leaving.length === 1 && info.following.leaving[0]!.upTo !== null,
    'the move seen, and the old head known', 30_000, () => info?.following)
  t.same(info!.following.leaving, [{ homeserver: old.key, upTo: '3' }], '/info shows where the old homeserver is read up to')
  old.release() // 2 and 3, then 4: written past the head it named when the user left
  let log: Awaited<ReturnType<typeof wholeLog>> = []
  // the drop is counted as the frame arrives, the events before it land with their commit
  await until(async () => ((info = await relayInfo(relay.url)).following.dropped.elsewhere ?? 0) >= 1 && (log = await wholeLog(relay.url)).length >= 3,
    'the events up to the head landed, and the one past it dropped', 30_000, () => ({ following: info?.following, log: log.length }))
  t.same(log.map((e) => [e.user, e.originSeq]), [1, 2, 3].map((seq) => [user.z32, String(seq)]), 'up to where it stood, once each, in order; not the event after it')
  t.equal(info!.following.dropped.elsewhere, 1)
})

t.test('limits: filters per subscriber, users per relay, streams per homeserver', async (t) => {
  const net = await pkarrNet(t, 1)
  const [a, b] = [new Person(net), new Person(net)]
  await a.signup(net.homeservers[0]!)
  await b.signup(net.homeservers[0]!)
  const relay = await startTestRelay(t, [], {
    PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1',
    RELAY_FILTERS_PER_SUBSCRIBER: '2', RELAY_MAX_USERS: '2', RELAY_STREAM_FILTERS: '1', RELAY_STREAMS_PER_HOMESERVER: '1',
  })
  const answer = async (query: string) => {
    const res = await fetch(`${relay.url}/subscribe?${query}`)
    return { status: res.status, body: (await res.json()) as { error: string } }
  }
  const c = randomKeypair().z32
  t.match(await answer(`filter=${a.user}/x&filter=${a.user}/y&filter=${a.user}/z`), { status: 400, body: { error: 'TooManyFilters' } })
  t.match(await answer(`filter=${a.user}/pub/${'x'.repeat(1100)}`), { status: 400, body: { error: 'InvalidFilter' } })
  const s = watch(t, `${relay.url}/subscribe?filter=${a.user}/*&filter=${b.user}/*`)
  t.equal(await s.status, 200)
  t.match(await answer(`filter=${c}/*`), { status: 429, body: { error: 'TooManyUsers' } }, 'a third user is one too many')
  t.equal((await fetch(`${relay.url}/subscribe/*?live=false`)).status, 200, 'a * filter asks nothing of anyone, and is not refused')
  let info: RelayInfo | undefined
  await until(async () => (info = await relayInfo(relay.url)).following.skipped === 1, 'one filter to be skipped: one stream of one filter', 30_000, () => info?.following)
  t.equal(info!.following.homeservers[0]!.streams.length, 1)
})

t.test('a subscriber resuming from its relay cursor misses nothing of its users and receives nothing twice, users added later included', async (t) => {
  const net = await pkarrNet(t, 2)
  const [alice, bob] = [new Person(net), new Person(net)]
  await alice.signup(net.homeservers[0]!)
  await bob.signup(net.homeservers[1]!)
  for (let i = 0; i < 5; i++) await Promise.all([alice.put(`/pub/a/${i}`, 'a'), bob.put(`/pub/b/${i}`, 'b')])
  const relay = await startTestRelay(t, [], { PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1', RELAY_LINGER_MS: '100', METRICS_PORT: '0' })

  const first = watch(t, `${relay.url}/subscribe/${alice.user}/*?lastSeq=0`)
  await until(() => first.events().length === 5, "alice's history, fetched from her homeserver")
  first.close()
  const cursor = first.events().at(-1)!.id
  await until(async () => (await relayInfo(relay.url)).following.homeservers.length === 0, 'the filter nobody holds to lapse')
  for (let i = 5; i < 10; i++) await Promise.all([alice.put(`/pub/a/${i}`, 'a'), bob.put(`/pub/b/${i}`, 'b')])

  // back from the cursor, now with bob too: bob's whole history lands after it, as alice's new events do
  const again = watch(t, `${relay.url}/subscribe?filter=${alice.user}/*&filter=${bob.user}/*&lastSeq=${cursor}`)
  await until(() => again.events().length === 15, "alice's five new events and bob's ten", 30_000, () => again.events().length)
  const got = [...first.events(), ...again.events()]
  const key = (e: StreamEvent) => `${e.homeserver}:${e.originSeq}`
  t.equal(new Set(got.map(key)).size, 20, 'nothing twice')
  const want = [...await alice.events(), ...await bob.events()]
  t.same(got.map(key).sort(), want.map(key).sort(), 'every event of both')

  const scrape = await Scrape.of(relay.metricsUrl!)
  t.equal(scrape.value('hearth_relay_followed_users'), 2)
  t.equal(scrape.value('hearth_relay_followed_homeservers'), 2)
  t.notMatch(scrape.text, new RegExp(`${alice.user}|${bob.user}|${net.homeservers[0]!.ctx.keypair.z32}`), 'no metric names a user or a homeserver')
})

t.test('--follow: a user followed for good, with no subscriber', async (t) => {
  const net = await pkarrNet(t, 1)
  const alice = new Person(net)
  await alice.signup(net.homeservers[0]!)
  await alice.put('/pub/a/1', 'a')
  const relay = await startTestRelay(t, [], { PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1', RELAY_LINGER_MS: '0', RELAY_FOLLOW: alice.user })
  await until(async () => (await wholeLog(relay.url)).length === 1, "alice's event in the relay's log")
  await alice.put('/pub/a/2', 'a')
  await until(async () => (await wholeLog(relay.url)).length === 2, 'and her next one')
  const s = watch(t, `${relay.url}/subscribe/${alice.user}/*`)
  t.equal(await s.status, 200)
  s.close()
  await alice.put('/pub/a/3', 'a')
  await until(async () => (await wholeLog(relay.url)).length === 3, 'a subscriber leaving takes nothing away')
  t.same((await relayInfo(relay.url)).following.homeservers.map((h) => h.streams.map((x) => x.filters)), [[[`${alice.user}/*`]]])
})

t.test('overlapping filters of one user in two upstream streams: each event lands once', async (t) => {
  const net = await pkarrNet(t, 1)
  const alice = new Person(net)
  await alice.signup(net.homeservers[0]!)
  for (let i = 0; i < 5; i++) await Promise.all([alice.put(`/pub/a/${i}`, 'a'), alice.put(`/pub/b/${i}`, 'b')])
  // one filter a stream: alice/* and alice/pub/a/* are read by two streams, which both bring /pub/a/
  const relay = await startTestRelay(t, [], { PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1', RELAY_STREAM_FILTERS: '1' })
  const s = watch(t, `${relay.url}/subscribe?filter=${alice.user}/*&filter=${alice.user}/pub/a/*&lastSeq=0`)
  await until(async () => (await relayInfo(relay.url)).following.homeservers[0]?.streams.length === 2, 'two streams')
  for (let i = 5; i < 10; i++) await alice.put(`/pub/a/${i}`, 'a')
  const want = (await alice.events()).map((e) => `${e.homeserver}:${e.originSeq}`)
  await until(async () => (await wholeLog(relay.url)).length >= want.length && s.events().length >= want.length, `${want.length} events`, 30_000, () => s.events().length)
  const log = await wholeLog(relay.url)
  t.same(log.map((e) => `${e.homeserver}:${e.originSeq}`).sort(), want.sort(), 'every event of hers once in the log')
  t.equal(s.events().length, want.length, 'and once on the stream')
})
