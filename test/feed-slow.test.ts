import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { HomeserverClient } from 'hearth-homeserver-client'
import { HIGH_WATER } from '../src/feed/sse.js'
import { startTestServer, newUser } from './helpers/server.js'
import { SocketStream, seqOf, writeMany } from './helpers/feed.js'
import type { SseFrame } from './helpers/sse-frames.js'

// A subscriber that stops reading while at least 20,000 events are written, on either
// streaming protocol: the server must not buffer for it beyond its high-water mark, must keep
// everyone else live, and must hand it every event, in order, once it reads again. How much
// the kernel buffers for a socket that does not read depends on the machine, so the writes go
// on, in rounds, until the server has sent the stalled one off the live path.

/** events written at least, and in each further round */
const EVENTS = 20_000
/** rounds at most: 5 × 14 MB of frames is past any loopback buffer this suite would meet */
const ROUNDS = 5
const CLIENTS = 4
const IN_FLIGHT = 16

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const memory = () => {
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

/** Follows seqs from frames: each event must be the one after the previous. */
class Order {
  count = 0
  last = 0
  gaps = 0
  largest = 0
  constructor(public first: number) {
    this.last = first - 1
  }
  frame = (f: SseFrame, bytes: number) => {
    if (f.event !== 'PUT') return
    const seq = seqOf(f)
    if (seq !== this.last + 1) this.gaps++
    this.last = seq
    this.count++
    this.largest = Math.max(this.largest, bytes)
  }
}

/** One user's `/pub/s/` folder as each protocol asks for it, live, from `after` if given. */
interface Feed {
  name: string
  target(user: string, after?: number): string
  /** a second long segment where frames carry the path once, not twice (path and uri), so all are ~700 bytes */
  tail: string
}
const name = 'x'.repeat(200)
const FEEDS: Feed[] = [
  {
    name: '/subscribe',
    target: (user, after) => `/subscribe?filter=${user}/pub/s/*${after === undefined ? '' : `&lastSeq=${after}`}`,
    tail: '',
  },
  {
    name: '/events-stream',
    target: (user, after) => `/events-stream?user=${user}${after === undefined ? '' : `:${after}`}&path=/pub/s/&live=true`,
    tail: `/${'y'.repeat(200)}`,
  },
]

for (const feed of FEEDS) t.test(`${feed.name}: a stalled subscriber stays bounded, others stay live, and it gets everything later`, async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const clients = Array.from({ length: CLIENTS }, () => new HomeserverClient(server.url, owner.keypair, owner.session))
  const first = server.ctx.events.head + 1

  const stalledOrder = new Order(first)
  const stalled = await SocketStream.open(server.url, feed.target(owner.user), stalledOrder.frame)
  t.teardown(() => stalled.close())
  t.equal(stalled.status, 200)
  stalled.socket.pause()
  const [stalledSub] = [...server.ctx.feed.subscribers()]
  const liveOrder = new Order(first)
  const live = await SocketStream.open(server.url, feed.target(owner.user), liveOrder.frame)
  t.teardown(() => live.close())
  t.equal(server.ctx.feed.size, 2)

  let maxBuffered = 0
  let leftLive = false
  const watch = setInterval(() => {
    maxBuffered = Math.max(maxBuffered, stalledSub!.stream.buffered)
    leftLive ||= !stalledSub!.live
  }, 2)
  t.teardown(() => clearInterval(watch))

  const before = memory()
  // Long names make frames of ~700 bytes: 20,000 of them are 14 MB.
  let written = 0
  for (let round = 0; round < ROUNDS && (round === 0 || !leftLive); round++) {
    await Promise.all(clients.map((c, k) => writeMany(c, EVENTS / CLIENTS, (i) => `/pub/s/${round}-${k}-${i}-${name}${feed.tail}`, IN_FLIGHT)))
    written += EVENTS
  }
  const head = server.ctx.events.head
  t.equal(head - first + 1, written)

  await live.until(() => liveOrder.last === head)
  t.equal(liveOrder.count, written, 'the reading subscriber got every event while the other stalled')
  t.equal(liveOrder.gaps, 0, 'in order, without gaps')
  const grown = memory() - before

  t.ok(leftLive && stalledSub!.catchUps >= 1, 'the stalled subscriber was backed up and left the live path')
  t.ok(stalledOrder.count < written, `the stalled subscriber had read only ${stalledOrder.count} of ${written} events`)
  const bound = HIGH_WATER + liveOrder.largest + 16
  t.ok(maxBuffered <= bound, `unsent bytes for it peaked at ${maxBuffered} (bound ${bound})`)
  t.ok(maxBuffered > HIGH_WATER / 2, 'its buffer really filled')
  maxBuffered = 0
  t.ok(grown < 48 * 1024 * 1024, `heap and buffers grew by ${(grown / 1048576).toFixed(1)} MiB`)

  // A replay into a socket that does not read is bounded the same way.
  const replayOrder = new Order(first)
  const replayer = await SocketStream.open(server.url, feed.target(owner.user, first - 1), replayOrder.frame)
  t.teardown(() => replayer.close())
  replayer.socket.pause()
  const replaySub = [...server.ctx.feed.subscribers()].at(-1)! // the newest
  let replayBuffered = 0
  const watchReplay = setInterval(() => (replayBuffered = Math.max(replayBuffered, replaySub.stream.buffered)), 2)
  t.teardown(() => clearInterval(watchReplay))
  await stalled.until(() => replayBuffered > HIGH_WATER)
  t.ok(replaySub.cursor < head, 'the replay is held back by its socket')
  replayer.socket.resume()
  await replayer.until(() => replayOrder.last === head)
  clearInterval(watchReplay)
  t.equal(replayOrder.count, written)
  t.equal(replayOrder.gaps, 0)
  t.ok(replayBuffered <= bound, `a stalled replay's unsent bytes peaked at ${replayBuffered}`)

  stalled.socket.resume()
  await stalled.until(() => stalledOrder.last === head)
  t.equal(stalledOrder.count, written, 'once it reads again it gets every event')
  t.equal(stalledOrder.gaps, 0, 'consecutive: no gap, no repeat')
  t.ok(maxBuffered <= bound, `while it caught up, unsent bytes peaked at ${maxBuffered}`)
  // and it is back on the live path
  await stalled.until(() => stalledSub!.live)
  await owner.put(`/pub/s/after-${name}`, 'x')
  await stalled.until(() => stalledOrder.last === head + 1)
  t.equal(stalledOrder.gaps, 0)
})
