import t from 'tap'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { ConsumerApi, type Delivery, type Worker } from './helpers/consumers.js'
import { instances } from './helpers/instances.js'
import { requirePostgres } from './helpers/postgres.js'
import { until } from './helpers/until.js'
import { floorOf, headOf } from './helpers/server.js'

/**
 * One consumer served by two instances on one PostgreSQL database (SPEC §12): workers on
 * both share its work, never both holding an event; the order per user holds across them;
 * and when one instance is killed (kill -9) while its workers hold events, the other's
 * workers get those events once their ack wait ends, and everything is processed. And a
 * reset that retention forces reaches the streams of both instances, whichever stored it.
 */
if (await requirePostgres(t)) {
  t.test('two instances, workers on both, one killed: one holder at a time, order per user, nothing lost', async (t) => {
    const [a, b] = await instances(t, 2)
    const owner = new HomeserverClient(a!.url, randomKeypair())
    await owner.signup()
    const onA = new ConsumerApi(a!.url, owner)
    const onB = new ConsumerApi(b!.url, owner)
    const id = await onA.create({ filters: ['*/pub/m/*'], from: 'new', ackWaitMs: 1500 })
    // on B, workers that take events and never ack; on A, workers that ack what they get
    const holders: Worker[] = [onB.worker(id), onB.worker(id)]
    const ackers: Worker[] = [onA.worker(id, { autoAck: true }), onA.worker(id, { autoAck: true })]
    t.teardown(() => [...holders, ...ackers].forEach((w) => w.close()))
    for (const w of [...holders, ...ackers]) t.equal(await w.status(), 200)
    const users = await Promise.all(Array.from({ length: 16 }, async () => {
      const c = new HomeserverClient(a!.url, randomKeypair())
      await c.signup()
      return c
    }))
    const perUser = 3
    for (let i = 0; i < perUser; i++) await Promise.all(users.map((u, j) => new HomeserverClient(j % 2 === 0 ? a!.url : b!.url, u.keypair, u.session).put(`/pub/m/${i}`, 'x')))
    await until(() => holders.every((w) => w.got.length > 0), 'the workers on B hold events')
    await b!.kill()
    await until(async () => {
      const s = (await onA.state(id)).body
      return s.pending === 0 && s.lag === 0
    }, 'every event processed on A', 60_000, () => ackers.map((w) => w.got.length))
    const all = [...holders, ...ackers].flatMap((w) => w.got)
    const keys = all.map((d) => `${d.seq}x${d.deliveries}`)
    t.equal(new Set(keys).size, keys.length, 'no delivery made to two streams at once (each (event, delivery) once)')
    t.equal(new Set(all.map((d) => d.seq)).size, users.length * perUser, 'every event went out')
    const held = holders.flatMap((w) => w.got)
    const again = ackers.flatMap((w) => w.got).filter((d) => held.some((h) => h.seq === d.seq))
    t.same(again.map((d) => d.seq).sort(), held.map((d) => d.seq).sort(), 'what B held came back on A')
    t.ok(again.every((d) => d.deliveries >= 2), 'as a later delivery')
    // order per user: each user's events first reached a worker in seq order
    const first = new Map<string, Delivery>()
    for (const d of [...all].sort((x, y) => x.arrival - y.arrival)) if (!first.has(d.seq)) first.set(d.seq, d)
    const byUser = new Map<string, number[]>()
    for (const d of first.values()) byUser.set(d.user, [...(byUser.get(d.user) ?? []), Number(d.seq)])
    for (const [user, s] of byUser) t.same(s, [...s].sort((x, y) => x - y), `${user.slice(0, 6)}: in order`)
  })

  t.test('a reset stored by either instance reaches the streams on both', async (t) => {
    const [a, b] = await instances(t, 2, { EVENT_RETENTION: '5' })
    const owner = new HomeserverClient(a!.url, randomKeypair())
    await owner.signup()
    const onA = new ConsumerApi(a!.url, owner)
    const onB = new ConsumerApi(b!.url, owner)
    for (let i = 1; i <= 12; i++) await owner.put(`/pub/r/${i}`, 'x')
    const head = await headOf(a!.url)
    await until(async () => (await floorOf(a!.url)) > head - 5, 'the sweep to prune the log')
    const id = await onA.create({ filters: [`${owner.user}/pub/r/*`], from: 'new', ack: 'automatic' })
    // a stream on each instance, both open before the reset is stored: the position taken back
    // below the floor, each instance's run reads the pruned stretch, and one stores the reset
    const workers = [onA.worker(id), onB.worker(id)]
    t.teardown(() => workers.forEach((w) => w.close()))
    for (const w of workers) t.equal(await w.status(), 200)
    t.equal((await onB.call('POST', `/consumers/${id}/reset`, { from: { after: '0' } })).status, 200)
    await until(() => workers.every((w) => w.resets.length > 0), 'a reset on both streams', 30_000, () => workers.map((w) => w.resets))
    const reset = (await onA.state(id)).body.reset as { requested: string; floor: string }
    t.equal(reset.requested, '0')
    for (const [i, w] of workers.entries()) t.same(w.resets, [reset], `the stream on ${i === 0 ? 'A' : 'B'}: the stored reset, once`)
    // the events from the floor on, each to one of the two streams
    const events = head - Number(reset.floor) + 1
    await until(() => workers.reduce((n, w) => n + w.got.length, 0) >= events, `${events} events delivered`)
    t.same(workers.flatMap((w) => w.got.map((d) => Number(d.seq))).sort((x, y) => x - y), Array.from({ length: events }, (_, i) => Number(reset.floor) + i))
  })
}

