import t, { type Test } from 'tap'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { ChildServer } from './helpers/child-server.js'
import { ConsumerApi, type Delivery, type Worker } from './helpers/consumers.js'
import { engineSettings } from './helpers/engine.js'
import { tempDir } from './helpers/server.js'
import { until } from './helpers/until.js'

/**
 * Durable consumers across kill -9 (SPEC §12), on the test engine: of a worker (what it held
 * goes out again at once, to another), and of the server while workers ack (after the restart
 * every event is processed, and nothing acknowledged before the kill comes back).
 */

async function setUp(t: Test) {
  const dataDir = tempDir(t, 'hearth-consumers-')
  const server = await ChildServer.start({ dataDir, env: await engineSettings(t, dataDir), keepPort: true })
  t.teardown(() => server.kill())
  const owner = new HomeserverClient(server.url, randomKeypair())
  await owner.signup()
  const writers = await Promise.all(Array.from({ length: 4 }, async () => {
    const c = new HomeserverClient(server.url, randomKeypair())
    await c.signup()
    return c
  }))
  return { server, owner, writers, api: new ConsumerApi(server.url, owner) }
}

const key = (d: Delivery) => `${d.seq}x${d.deliveries}`

t.test('a worker killed while it holds events: they go out again at once, to another worker', async (t) => {
  const { api, writers } = await setUp(t)
  const id = await api.create({ filters: ['*/pub/c/*'], from: 'new', ackWaitMs: 600_000 })
  const doomed = api.worker(id)
  t.equal(await doomed.status(), 200)
  for (const w of writers) await w.put('/pub/c/1', 'x')
  await doomed.received(writers.length, 'one event per user held')
  doomed.close() // the socket drops without a word, as when the worker's process is killed
  const heir = api.worker(id, { autoAck: true })
  t.teardown(() => heir.close())
  await heir.received(writers.length, 'the held events, long before their ack wait of 10 minutes')
  t.same(heir.got.map(key).sort(), doomed.got.map((d) => `${d.seq}x2`).sort(), 'each once more, counted as a second delivery')
  await until(async () => (await api.state(id)).body.pending === 0, 'all acked')
})

t.test('kill -9 of the server while workers ack: after the restart only what was not acknowledged comes back', async (t) => {
  const { server, api, writers } = await setUp(t)
  const id = await api.create({ filters: ['*/pub/c/*'], from: 'start', ackWaitMs: 1500 })
  const perUser = 12
  for (let i = 0; i < perUser; i++) for (const w of writers) await w.put(`/pub/c/${i}`, 'x')
  const total = perUser * writers.length
  const before: Worker[] = [api.worker(id, { autoAck: true }), api.worker(id, { autoAck: true })]
  await until(() => before.reduce((n, w) => n + w.acked.size, 0) >= 8, 'some acks before the kill')
  await server.kill()
  const ackedBefore = new Set(before.flatMap((w) => [...w.acked]))
  for (const w of before) w.close()
  await server.restart()
  const after: Worker[] = [api.worker(id, { autoAck: true }), api.worker(id, { autoAck: true })]
  t.teardown(() => after.forEach((w) => w.close()))
  await until(async () => {
    const s = (await api.state(id)).body
    return s.pending === 0 && s.lag === 0
  }, 'every event processed after the restart', 60_000, () => after.map((w) => w.got.length))
  const all = [...before, ...after].flatMap((w) => w.got)
  const seen = new Set(all.map((d) => Number(d.seq)))
  t.equal(seen.size, total, `every event went out at least once (${all.length} deliveries of ${total} events)`)
  const back = after.flatMap((w) => w.got).filter((d) => ackedBefore.has(d.id))
  t.same(back.map(key), [], `none of the ${ackedBefore.size} acknowledged before the kill came back`)
  const keys = all.map(key)
  t.equal(new Set(keys).size, keys.length, 'no delivery of an event was made twice (one holder at a time)')
})
