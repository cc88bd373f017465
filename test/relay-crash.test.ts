import t from 'tap'
import { follow } from 'hearth-homeserver-client/follow'
import type { FollowEvent } from 'hearth-homeserver-client'
import { ChildServer } from './helpers/child-server.js'
import { engineSettings, TEST_ENGINE } from './helpers/engine.js'
import { caughtUp, checkRelayLog, killRounds, pinned } from './helpers/relay.js'
import { headOf, newUser, startTestServer, tempDir } from './helpers/server.js'
import { until } from './helpers/until.js'

// the second engine's run is a check of the same promise, with fewer rounds to keep `npm test` short
const ROUNDS = Number(process.env.HEARTH_RELAY_CRASH_ROUNDS ?? (TEST_ENGINE === 'postgres' ? 10 : 20))

t.test(`kill -9 of the relay, ${ROUNDS} times, while three homeservers write: every event once, followers lose nothing`, async (t) => {
  const hs = await Promise.all([0, 1, 2].map(() => startTestServer(t)))
  const users = await Promise.all(hs.map((s) => newUser(s)))
  const dir = tempDir(t)
  const relay = await ChildServer.start({
    command: 'relay',
    dataDir: dir,
    keepPort: true,
    env: { ...(await engineSettings(t, dir)), RELAY_UPSTREAMS: hs.map(pinned).join(','), RELAY_RETRY_MAX_MS: '300' },
  })
  t.teardown(() => relay.kill())

  // writers on every homeserver, for the whole test
  let writing = true
  let acknowledged = 0
  const writers = users.map(async (user, w) => {
    for (let i = 0; writing; i++) {
      await user.put(`/pub/w${w}/${i % 50}`, `${i}`)
      acknowledged++
    }
  })

  // a follower of the relay, resuming by itself after each crash
  const stop = new AbortController()
  const received: FollowEvent[] = []
  const following = (async () => {
    const follower = follow({ url: relay.url, from: 'start', cursorStore: 'memory', signal: stop.signal, idleTimeoutMs: 5000, backoff: { baseMs: 50, maxMs: 300 } })
    for await (const ev of follower) received.push(ev)
  })()

  const violations = await killRounds(relay, ROUNDS)
  writing = false
  await Promise.all(writers)
  t.same(violations, [], 'the relay never died on its own')
  t.ok(acknowledged > ROUNDS, `${acknowledged} writes acknowledged across ${ROUNDS} kills`)

  await caughtUp(relay.url, hs.map(pinned), 120_000)
  const log = await checkRelayLog(t, relay.url, hs.map((s) => ({ url: s.url, key: s.ctx.keypair.z32 })))
  const head = await headOf(relay.url)
  await until(() => received.length >= head, `the follower to reach the relay's head ${head}`, 60_000, () => received.length)
  stop.abort()
  await following
  t.same(received.map((e) => Number(e.seq)), log.map((e) => Number(e.seq)), 'the follower got every event once, in order')
  t.same(received.map(({ ack: _ack, ...e }) => e), log, 'and the same events')
})
