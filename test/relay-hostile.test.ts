import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { randomKeypair } from '../src/auth/keys.js'
import { framesOf } from '../src/feed/frames.js'
import type { HearthEvent } from '../src/events/event.js'
import { parseCursor } from '../src/shared/id.js'
import { caughtUp, fromHomeserver, relayInfo, startTestRelay, wholeLog, type RelayInfo } from './helpers/relay.js'
import { newUser, startTestServer, type Teardown } from './helpers/server.js'
import { until } from './helpers/until.js'

/** How a fake upstream misbehaves after serving its three good events. */
type Misbehaviour =
  | 'goes-back' // sends an event whose seq is not above the last one
  | 'malformed' // a frame whose data is not JSON
  | 'huge' // one frame of 10 MB
  | 'no-answer' // /subscribe never sends its response headers
  | 'silent' // /subscribe answers 200 and then never sends a byte
  | 'private' // an event for a /priv/ path, which no public feed carries
  | 'key-change' // /info names another homeserver key once the relay has followed it
  | 'redirect' // /subscribe answers 302 to a service behind the relay, which must never be asked
  | 'lone-surrogate' // a path no UTF-8 request could have named
  | 'huge-size' // a PUT of 2^53 - 1 bytes
  | 'future' // a commit time in the year 275760
  | 'good' // its three events, then an open, quiet stream

const GOOD = 3

/**
 * A server that speaks just enough of the homeserver protocol to be followed (`/info`,
 * `/subscribe`), with three good events, and then breaks it in one way. It counts the
 * streams asked of it, so a test can see the relay come back after each drop.
 */
class FakeUpstream {
  readonly key = randomKeypair().z32
  readonly other = randomKeypair().z32
  readonly user = randomKeypair().z32
  readonly behaviour: Misbehaviour
  readonly #server: http.Server
  /** where a `redirect` upstream points: a service that answers secrets to whoever asks */
  internal = ''
  subscribes = 0
  infos = 0
  url = ''

  constructor(behaviour: Misbehaviour) {
    this.behaviour = behaviour
    this.#server = http.createServer((req, res) => this.#answer(req, res))
  }

  static async start(t: Teardown, behaviour: Misbehaviour): Promise<FakeUpstream> {
    const fake = new FakeUpstream(behaviour)
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve))
    fake.url = `http://127.0.0.1:${(fake.#server.address() as AddressInfo).port}`
    t.teardown(() => new Promise<void>((resolve) => {
      fake.#server.closeAllConnections()
      fake.#server.close(() => resolve())
    }))
    return fake
  }

  event(seq: number, path = `/pub/fake/${seq}`): HearthEvent {
    return { seq, type: 'PUT', user: this.user, path, contentHash: Buffer.alloc(32, seq).toString('base64'), size: seq, ts: 1_700_000_000_000 + seq }
  }

  #answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.url === '/info') {
      this.infos++
      // the key flips once the relay has followed the stream (its first two /info reads)
      const key = this.behaviour === 'key-change' && this.infos > 2 ? this.other : this.key
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ publicKey: key, events: { head: String(GOOD), floor: '1' } }))
      return
    }
    if (!req.url!.startsWith('/subscribe')) return void res.writeHead(404).end()
    this.subscribes++
    if (this.behaviour === 'no-answer') return
    if (this.behaviour === 'redirect') return void res.writeHead(302, { location: `${this.internal}/admin?x=` }).end('moved')
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    if (this.behaviour === 'silent') return void res.flushHeaders()
    const after = Number(parseCursor(String(req.headers['last-event-id'] ?? '0')) ?? 0)
    res.write('retry: 2000\n\n')
    for (let seq = after + 1; seq <= GOOD; seq++) res.write(framesOf(this.event(seq)).subscribeText)
    switch (this.behaviour) {
      case 'goes-back':
        res.write(framesOf(this.event(Math.max(1, after))).subscribeText)
        return
      case 'malformed':
        res.write(`id: ${framesOf(this.event(GOOD + 1)).id}\nevent: PUT\ndata: {"seq": not json\n\n`)
        return
      case 'huge': {
        res.write('event: PUT\ndata: ')
        const chunk = 'x'.repeat(64 * 1024)
        for (let i = 0; i < 160; i++) res.write(chunk)
        res.end('\n\n')
        return
      }
      case 'private':
        res.write(framesOf(this.event(GOOD + 1, '/priv/secret.txt')).subscribeText)
        return
      case 'lone-surrogate':
        res.write(framesOf(this.event(GOOD + 1, '/pub/\ud800x')).subscribeText)
        return
      case 'huge-size':
        res.write(framesOf({ ...this.event(GOOD + 1), size: 2 ** 53 - 1 }).subscribeText)
        return
      case 'future':
        res.write(framesOf({ ...this.event(GOOD + 1), ts: 8.64e15 }).subscribeText)
        return
      case 'good':
        return
      case 'key-change':
        // end the stream: the follower's reconnect reads /info again
        res.end()
        return
    }
  }
}

const EXPECTED_FAULT: Record<Exclude<Misbehaviour, 'good'>, keyof RelayInfo['upstreams'][number]['faults']> = {
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
  const relay = await startTestRelay(t, [hs.url, ...fakes.map((f) => f.url)], { RELAY_IDLE_MS: '1500' })

  // the good homeserver is written to all along, and followed all along
  for (let i = 0; i < 20; i++) await user.put(`/pub/good/${i}`, `${i}`)
  await caughtUp(relay.url, [hs.url])

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
  await caughtUp(relay.url, [hs.url])
  const log = await wholeLog(relay.url)
  t.same(log.map((e) => Number(e.seq)), log.map((_, i) => i + 1), 'the relay log is gapless')
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
  const relay = await startTestRelay(t, [fake.url], { RELAY_FILTERS: `${fake.other}/pub/only-this/*` })
  let info: RelayInfo | undefined
  await until(async () => ((info = await relayInfo(relay.url)).upstreams[0]!.unasked >= GOOD), `${GOOD} unasked events to be counted`, 30_000, () => info?.upstreams[0])
  t.same(fromHomeserver(await wholeLog(relay.url), fake.key).events, [], 'none of them is in the relay log')
  t.equal(info!.upstreams[0]!.faults['invalid-event'], 0, 'and the upstream is not dropped for them')
})
