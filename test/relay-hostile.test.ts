import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { FakeUpstream, GOOD, type Misbehaviour } from './helpers/fake-upstream.js'
import { caughtUp, fromHomeserver, pinned, relayInfo, startTestRelay, wholeLog, type RelayInfo } from './helpers/relay.js'
import { newUser, startTestServer } from './helpers/server.js'
import { until } from './helpers/until.js'

const EXPECTED_FAULT: Record<Exclude<Misbehaviour, 'good' | 'held'>, keyof RelayInfo['upstreams'][number]['faults']> = {
  'goes-back': 'protocol',
  malformed: 'protocol',
  huge: 'protocol',
  'no-answer': 'unreachable',
  silent: 'unreachable',
  private: 'invalid-event',
  'key-change': 'key-changed',
  redirect: 'protocol',
  'lone-surrogate': 'invalid-event',
  'huge-size': 'invalid-event',
  future: 'invalid-event',
}

t.test('hostile upstreams are dropped, counted and retried; none corrupts the log or holds back the others', async (t) => {
  const hs = await startTestServer(t, { KEEPALIVE_MS: '300' })
  const user = await newUser(hs)
  const fakes = await Promise.all((Object.keys(EXPECTED_FAULT) as (keyof typeof EXPECTED_FAULT)[]).map((b) => FakeUpstream.start(t, b)))
  // an internal service the redirecting upstream points at: asked once, it would show its secret
  let internalAsked = 0
  const internal = http.createServer((_req, res) => (internalAsked++, res.writeHead(403).end('INTERNAL-ONLY: db_password=hunter2')))
  await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => (internal.closeAllConnections(), internal.close(() => resolve()))))
  for (const f of fakes) f.internal = `http://127.0.0.1:${(internal.address() as AddressInfo).port}`
  const relay = await startTestRelay(t, [pinned(hs), ...fakes.map((f) => f.pinned)], { RELAY_IDLE_MS: '1500' })

  // the good homeserver is written to all along, and followed all along
  for (let i = 0; i < 20; i++) await user.put(`/pub/good/${i}`, `${i}`)
  await caughtUp(relay.url, [pinned(hs)])

  let info: RelayInfo | undefined
  await until(async () => {
    info = await relayInfo(relay.url)
    return fakes.every((f, i) => info!.upstreams[i + 1]!.faults[EXPECTED_FAULT[f.behaviour as keyof typeof EXPECTED_FAULT]] >= 2)
  }, 'every hostile upstream to be dropped and retried at least twice', 60_000, () => info?.upstreams.map((u) => [u.upstream, u.faults, u.lastError]))
  for (const [i, f] of fakes.entries()) {
    const u = info!.upstreams[i + 1]!
    t.ok(u.lastError, `${f.behaviour}: the reason is shown (${u.lastError})`)
    t.ok(u.lastError!.length <= 200 && !/INTERNAL|password/.test(u.lastError!), `${f.behaviour}: the reason is short and no body`)
    t.ok(f.subscribes >= 2 || f.behaviour === 'key-change', `${f.behaviour}: retried (${f.subscribes} streams)`)
  }

  for (let i = 20; i < 40; i++) await user.put(`/pub/good/${i}`, `${i}`)
  await caughtUp(relay.url, [pinned(hs)])
  const log = await wholeLog(relay.url)
  t.same(log.map((e) => Number(e.seq)), log.map((_, i) => i + 1), 'the relay log is gapless')
  const snapshot = await fetch(`${relay.url}/subscribe?snapshot=true`)
  t.same([snapshot.status, ((await snapshot.json()) as { error: string }).error], [400, 'SnapshotUnsupported'], 'a relay has no files to snapshot')
  for (const f of fakes) {
    const mine = fromHomeserver(log, f.key)
    // what each sent before it misbehaved is in the log once; nothing after it, nothing under another key
    const sentGood = f.behaviour === 'no-answer' || f.behaviour === 'silent' || f.behaviour === 'redirect' ? [] : [1, 2, 3]
    t.same(mine.originSeqs, sentGood, `${f.behaviour}: its good events once, nothing else`)
    t.same(fromHomeserver(log, f.other).events, [], `${f.behaviour}: nothing under another key`)
    t.notOk(mine.events.some((e) => e.path.startsWith('/priv/')), `${f.behaviour}: no private path`)
  }
  const good = fromHomeserver(log, hs.ctx.keypair.z32)
  t.same(good.originSeqs, Array.from({ length: 40 }, (_, i) => i + 1), 'the good homeserver: all 40 events, once, in order')
  t.equal(internalAsked, 0, 'the service a redirect pointed at was never asked')
  const shown = await (await fetch(`${relay.url}/info`)).text()
  t.notMatch(shown, /INTERNAL|password/, "nothing of its answer is in the relay's /info")
})

t.test("events outside the relay's own filters are not stored, whatever an upstream sends", async (t) => {
  const fake = await FakeUpstream.start(t, 'good')
  // the relay asks for another user's folder; this upstream sends its own user's events anyway
  const relay = await startTestRelay(t, [fake.pinned], { RELAY_FILTERS: `${fake.other}/pub/only-this/*` })
  let info: RelayInfo | undefined
  await until(async () => ((info = await relayInfo(relay.url)).upstreams[0]!.unasked >= GOOD), `${GOOD} unasked events to be counted`, 30_000, () => info?.upstreams[0])
  t.same(fromHomeserver(await wholeLog(relay.url), fake.key).events, [], 'none of them is in the relay log')
  t.equal(info!.upstreams[0]!.faults['invalid-event'], 0, 'and the upstream is not dropped for them')
})
