import t, { type Test } from 'tap'
import http from 'node:http'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { newUser, startTestServer } from './helpers/server.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { idOf } from 'hearth-homeserver-client/id'
import { ConsumerApi, ulid, type Delivery } from './helpers/consumers.js'
import { until } from './helpers/until.js'
import { within } from './helpers/store-cases/common.js'

/**
 * Durable consumers over HTTP (SPEC §12), on the test engine: the definition's routes and
 * their refusals, explicit and automatic acks, redelivery, dead letters, one holder per
 * event, order per user, the `/priv/` rule and sign-out.
 */

const seqs = (ds: readonly Delivery[]) => ds.map((d) => Number(d.seq))

t.test('create, read, list and delete; the same id twice; refusals in the §7 shape', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = ulid()
  const def = { filters: [`${alice.user}/pub/*`], from: 'start', ack: 'explicit', ackWaitMs: 5000 }
  const created = await api.put(id, def)
  t.equal(created.status, 201)
  t.match(created.body, { id, filters: [`${alice.user}/pub/*`], from: 'start', ack: 'explicit', ackWaitMs: 5000, maxDeliver: 5, maxPending: 1000, shareProgress: false, ackFloor: '0000000000000', pending: 0, redelivered: 0, dead: 0, lag: 0, streams: 0, reset: null })
  t.equal(typeof created.body.createdAt, 'number')
  t.equal((await api.put(id, def)).status, 200, 'the same definition again: 200')
  const other = await api.put(id, { ...def, ackWaitMs: 6000 })
  t.equal(other.status, 409)
  t.equal(other.body.error, 'ConsumerExists')
  t.same((await api.call('GET', '/consumers')).body.consumers.map((c: { id: string }) => c.id), [id])
  t.same((await new ConsumerApi(server.url, bob).call('GET', '/consumers')).body, { consumers: [] }, "bob's list is his own")
  t.equal((await new ConsumerApi(server.url, bob).state(id)).status, 404, "bob does not see alice's")

  const refused = async (what: string, status: number, code: string, res: Promise<{ status: number; body: any }>) => {
    const r = await res
    t.equal(r.status, status, what)
    t.equal(r.body?.error, code, `${what}: ${code}`)
    t.equal(typeof r.body?.message, 'string')
  }
  await refused('a malformed id', 400, 'InvalidConsumerId', api.put('not-a-ulid', def))
  await refused('an id more than a day ahead', 400, 'InvalidConsumerId', api.put(ulid(Date.now() + 2 * 86400_000), def))
  await refused('a body that is not JSON', 400, 'InvalidBody', api.put(ulid(), '{'))
  await refused('an unknown field', 400, 'InvalidBody', api.put(ulid(), { ...def, color: 'red' }))
  await refused('65 filters', 400, 'InvalidBody', api.put(ulid(), { filters: Array.from({ length: 65 }, () => '*') }))
  await refused('a bad filter', 400, 'InvalidFilter', api.put(ulid(), { filters: ['nobody/*'] }))
  await refused('a position past the head', 400, 'FutureCursor', api.put(ulid(), { from: { after: '99' } }))
  await refused('a bad ack kind', 400, 'InvalidBody', api.put(ulid(), { ack: 'sometimes' }))
  await refused('no session', 401, 'NoSession', api.call('GET', `/consumers/${id}`, undefined, { 'pubky-host': alice.user }))
  await refused("someone else's session", 403, 'Forbidden', api.call('GET', `/consumers/${id}`, undefined, { cookie: bob.headers().cookie!.replace(bob.user, alice.user), 'pubky-host': alice.user }))
  await refused('an ack of a bad id', 400, 'InvalidCursor', api.ack(id, { ack: ['nope'] }))
  t.equal((await api.call('DELETE', `/consumers/${id}`)).status, 204)
  t.equal((await api.state(id)).status, 404, 'gone')
  t.equal((await api.call('DELETE', `/consumers/${id}`)).status, 404)
})

t.test('explicit acks: delivered once, acked, the floor moves; nak, term, and redelivery after the ack wait up to dead', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  for (let i = 1; i <= 3; i++) await alice.put(`/pub/a/${i}`, `v${i}`)
  const id = await api.create({ filters: [`${alice.user}/pub/a/*`], from: 'start', ackWaitMs: 400, maxDeliver: 2 })
  const w = api.worker(id)
  t.teardown(() => w.close())
  t.equal(await w.status(), 200)
  // one user: one event out at a time, in order
  const [first] = await w.received(1)
  t.match(first, { seq: '1', type: 'PUT', path: '/pub/a/1', deliveries: 1 })
  await w.ack([first!.id])
  await w.received(2)
  t.match(w.got[1], { seq: '2', deliveries: 1 }, 'the next of the user only once the first is acked')
  await w.ack([w.got[1]!.id], 'nak')
  await w.received(3)
  t.match(w.got[2], { seq: '2', deliveries: 2 }, 'a nak sends it again at once')
  // not acked: once the ack wait runs out it has gone out maxDeliver (2) times, so it is dead, and the next goes out
  await w.received(4, 'the event after the dead one')
  t.match(w.got[3], { seq: '3', deliveries: 1 })
  await w.ack([w.got[3]!.id], 'term')
  await until(async () => (await api.state(id)).body.dead === 2, 'two dead letters')
  const state = (await api.state(id)).body
  t.match(state, { ackFloor: '0000000000006', pending: 0, dead: 2, lag: 0 }, 'the floor passed the dead ones (seq 3 is 0000000000006)')
  const dead = (await api.call('GET', `/consumers/${id}/dead`)).body.events
  t.match(dead, [{ seq: '2', path: '/pub/a/2', deliveries: 2, reason: 'maxDeliver' }, { seq: '3', deliveries: 1, reason: 'term' }])
  await alice.put('/pub/a/4', 'v4')
  const [, , , , fourth] = await w.received(5)
  t.match(fourth, { seq: '4', deliveries: 1 }, 'live events follow')
})

t.test('one holder at a time, order per user, and a fair share across workers', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const users = await Promise.all(Array.from({ length: 12 }, () => newUser(server)))
  const api = new ConsumerApi(server.url, owner)
  const id = await api.create({ filters: ['*/pub/q/*'], from: 'new', ackWaitMs: 60_000 })
  const workers = Array.from({ length: 4 }, () => api.worker(id))
  t.teardown(() => workers.forEach((w) => w.close()))
  for (const w of workers) t.equal(await w.status(), 200)
  await until(async () => (await api.state(id)).body.streams === 4, 'four streams open')
  for (let i = 0; i < 3; i++) for (const u of users) await u.put(`/pub/q/${i}`, 'x')
  const all = () => workers.flatMap((w) => w.got)
  // nobody acks: one event per user is out, each to one worker only
  await until(() => all().length >= users.length, 'one event per user out')
  const out = all()
  t.equal(out.length, users.length, 'no second event of a user while the first is unacked')
  t.equal(new Set(out.map((d) => d.user)).size, users.length, 'one per user')
  t.ok(out.every((d) => d.path === '/pub/q/0' && d.deliveries === 1), 'each the first of its user, once')
  t.ok(workers.every((w) => w.got.length >= 2), `a fair share each: ${workers.map((w) => w.got.length)}`)
  // now acks flow: two workers ack what they hold as they leave, two leave without (what they
  // held goes out again); new workers ack each event as it comes
  for (const [i, w] of workers.entries()) {
    if (i < 2) void w.ack(w.got.map((d) => d.id))
    w.conn.close()
  }
  const acking = Array.from({ length: 4 }, () => api.worker(id, { autoAck: true }))
  t.teardown(() => acking.forEach((w) => w.close()))
  const total = users.length * 3
  await until(async () => (await api.state(id)).body.lag === 0 && (await api.state(id)).body.pending === 0, 'everything acked', 30_000, () => acking.map((w) => w.got.length))
  // Order per user is what the contract says, seen on one clock of arrivals and ack requests:
  // an event goes out only once every earlier event of its user is acked. Acks are by id, so
  // the ack a closing worker sent still counts, and the copy redelivered meanwhile to another
  // stream may arrive after the user's next event: a duplicate, not an inversion.
  const arrived = [...out, ...acking.flatMap((w) => w.got)].sort((a, b) => a.arrival - b.arrival)
  const ackSent = new Map<string, number>()
  for (const w of [...workers, ...acking]) for (const [id, at] of w.ackSent) ackSent.set(id, Math.min(at, ackSent.get(id) ?? Infinity))
  const byUser = new Map<string, Delivery[]>()
  for (const d of arrived) byUser.set(d.user, [...(byUser.get(d.user) ?? []), d])
  for (const [user, ds] of byUser) {
    const firsts = [...new Set(ds.map((d) => Number(d.seq)))]
    t.same(firsts, [...firsts].sort((a, b) => a - b), `${user.slice(0, 6)}: first deliveries in order`)
    const early = ds.filter((d) => ds.some((e) => Number(e.seq) < Number(d.seq) && !((ackSent.get(e.id) ?? Infinity) < d.arrival)))
    t.same(early.map((d) => `${d.seq}x${d.deliveries}`), [], `${user.slice(0, 6)}: none before every earlier one was acked`)
  }
  t.equal(new Set(arrived.map((d) => d.seq)).size, total, 'every event went out')
})

/**
 * A consumer of alice's `/pub/s/*` over `events` events, the first of which went to a stream
 * (`gone`) that then ended, and out again to `holder`, as its second delivery.
 */
async function outAgain(t: Test, events: number) {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  for (let i = 1; i <= events; i++) await alice.put(`/pub/s/${i}`, 'x')
  const id = await api.create({ filters: [`${alice.user}/pub/s/*`], from: 'start', ackWaitMs: 60_000 })
  const gone = api.worker(id)
  const [first] = await gone.received(1)
  gone.close()
  const holder = api.worker(id)
  t.teardown(() => holder.close())
  await holder.received(1, 'the first event out again once the stream holding it ended')
  t.match(holder.got[0], { seq: '1', deliveries: 2 })
  return { api, id, gone, first: first!, holder }
}

t.test('an ack counts by id, whoever sends it: the copy out again meanwhile is a duplicate, and the next event goes', async (t) => {
  const { api, id, gone, first, holder: taker } = await outAgain(t, 2)
  await gone.ack([first.id])
  await taker.received(2, "the user's next event, though the taker never acked the first")
  t.match(taker.got[1], { seq: '2', deliveries: 1 })
  t.match((await api.state(id)).body, { pending: 1, ackFloor: '0000000000002' }, 'the first is done')
})

t.test('a nak or term naming its delivery is passed over once the event went out again; naming none, it ends whatever hold there is', async (t) => {
  const { api, id, gone, first, holder } = await outAgain(t, 1)
  const other = api.worker(id)
  t.teardown(() => other.close())
  t.equal(await other.status(), 200)
  // the first worker's late "not now" and "give up", about its delivery: the event is in the holder's hands
  await gone.ack([`${first.id}:1`], 'nak')
  await gone.ack([`${first.id}:1`], 'term')
  t.match((await api.state(id)).body, { pending: 1, dead: 0 }, 'still out, not dead')
  const both = () => [...holder.got, ...other.got]
  await holder.ack([`${first.id}:2`], 'nak')
  await until(() => both().length === 2, "the holder's own nak hands it on")
  t.match(both()[1], { seq: '1', deliveries: 3 })
  await gone.ack([first.id], 'nak')
  await until(() => both().length === 3, 'a nak naming no delivery ends whatever hold there is')
  t.match(both()[2], { seq: '1', deliveries: 4 })
  t.equal((await api.ack(id, { nak: [`${first.id}:x`] })).status, 400, 'a delivery count that is none: 400')
})

t.test("the owner's /priv/ events, nobody else's; signing out ends the streams, not the consumer", async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: ['*'], from: 'new', ack: 'automatic' })
  const w = api.worker(id)
  t.equal(await w.status(), 200)
  await bob.put('/priv/secret', 'b')
  await alice.put('/priv/mine', 'a')
  await bob.put('/pub/open', 'b')
  await w.received(2)
  await until(async () => (await api.state(id)).body.lag === 0, 'all done')
  t.same(w.got.map((d) => `${d.user === alice.user ? 'alice' : 'bob'}${d.path}`), ['alice/priv/mine', 'bob/pub/open'], "alice's own /priv/ event, never bob's")
  await alice.signout()
  await within(10_000, w.conn.ended, 'signing out ends the stream')
  await alice.signin()
  t.equal((await api.state(id)).status, 200, 'the consumer stays')
})

t.test('automatic acks: done once written; reset moves the position; acked waits', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: [`${alice.user}/pub/*`], from: 'start', ack: 'automatic', shareProgress: true })
  for (let i = 1; i <= 5; i++) await alice.put(`/pub/${i}`, 'x')
  const w = api.worker(id)
  await w.received(5)
  t.same(seqs(w.got), [1, 2, 3, 4, 5])
  t.ok(w.got.every((d) => d.deliveries === 1))
  await until(async () => (await api.state(id)).body.ackFloor === '000000000000A', 'the floor at seq 5')
  const acked = await fetch(`${server.url}/consumers/${id}/acked?event=000000000000A&pubky-host=${alice.user}`)
  t.same(await acked.json(), { acked: true, matched: true, ackFloor: '000000000000A' }, 'anyone may ask: it shares its progress')
  w.close()
  const reset = await api.call('POST', `/consumers/${id}/reset`, { from: { after: '3' } })
  t.equal(reset.status, 200)
  t.equal(reset.body.ackFloor, '0000000000006')
  const again = api.worker(id)
  t.teardown(() => again.close())
  await again.received(2)
  t.same(seqs(again.got), [4, 5], 'from the new position')
  // a wait that the next delivery ends: no stream is open when it starts
  again.close()
  await until(async () => (await api.state(id)).body.streams === 0, 'the stream closed')
  await alice.put('/pub/6', 'x')
  const waiting = fetch(`${server.url}/consumers/${id}/acked?event=000000000000C&timeoutMs=20000&pubky-host=${alice.user}`).then((r) => r.json())
  const third = api.worker(id)
  t.teardown(() => third.close())
  t.same(await waiting, { acked: true, matched: true, ackFloor: '000000000000C' }, 'answered once written out')
  t.same(seqs(await third.received(1)), [6])
  await alice.put('/priv/7', 'x')
  const nomatch = await fetch(`${server.url}/consumers/${id}/acked?event=000000000000E&timeoutMs=20000&pubky-host=${alice.user}`)
  t.match(await nomatch.json(), { matched: false }, 'an event it does not carry: at once')
})

t.test('acked: the owner only unless shared; a timeout answers acked:false', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: ['*'], from: 'new' })
  await alice.put('/pub/x', 'x')
  const url = `${server.url}/consumers/${id}/acked?event=0000000000002`
  t.equal((await fetch(`${url}&pubky-host=${alice.user}`)).status, 401, 'no session, not shared')
  const res = await api.call('GET', `/consumers/${id}/acked?event=0000000000002&timeoutMs=200`)
  t.same(res.body, { acked: false, matched: true, ackFloor: '0000000000000' })
  t.equal((await api.call('GET', `/consumers/${id}/acked?event=0000000000002&timeoutMs=30001`)).status, 400, 'a wait past 30 s is refused')
})

t.test('a consumer that shares its progress carries public events only, so what anyone is told tells nothing of private ones', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: [`${alice.user}/*`], from: 'new', shareProgress: true, ackWaitMs: 60_000 })
  const w = api.worker(id)
  t.teardown(() => w.close())
  t.equal(await w.status(), 200)
  await alice.put('/priv/plan.txt', 'x')
  await alice.put('/pub/post.txt', 'x')
  const [first] = await w.received(1)
  t.match(first, { path: '/pub/post.txt' }, 'the public event, not the private one before it')
  const answer = await (await fetch(`${server.url}/consumers/${id}/acked?event=${first!.id}&pubky-host=${alice.user}`)).json()
  t.match(answer, { acked: false, matched: true, ackFloor: idOf(Number(first!.seq) - 1) }, 'to anyone: the floor before the public event out')
})

t.test('creation is rate-limited and capped per user, with Retry-After', async (t) => {
  const server = await startTestServer(t, { CONSUMER_CREATE_RATE: '1/h:3', MAX_CONSUMERS_PER_USER: '2' })
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const a = await api.create({})
  await api.create({})
  const full = await api.put(ulid(), {})
  t.equal(full.status, 429, 'past MAX_CONSUMERS_PER_USER')
  t.ok(Number(full.headers.get('retry-after')) > 0)
  t.equal((await api.put(a, {})).status, 200, 'the same definition again is no creation')
  await api.call('DELETE', `/consumers/${a}`)
  const burst = await api.put(ulid(), {})
  t.equal(burst.status, 429, 'the burst of 3 is spent')
  t.equal(burst.body.error, 'TooManyRequests')
  t.ok(Number(burst.headers.get('retry-after')) > 60, `an hour's rate: ${burst.headers.get('retry-after')} s`)
})

t.test('retention wins: a position below the floor gives event: reset, and the state says so', async (t) => {
  const server = await startTestServer(t, { EVENT_RETENTION: '5' })
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: [`${alice.user}/pub/*`], from: 'start', ack: 'automatic' })
  for (let i = 1; i <= 12; i++) await alice.put(`/pub/${i}`, 'x')
  await server.ctx.retention!.sweep()
  const floor = server.ctx.events.floor
  t.ok(floor > 1, `pruned up to ${floor}`)
  const w = api.worker(id)
  t.teardown(() => w.close())
  await w.received(12 - floor + 1, 'the events from the floor on')
  t.same(w.resets, [{ requested: '0', floor: String(floor) }], 'one reset, first')
  t.same(seqs(w.got), Array.from({ length: 12 - floor + 1 }, (_, i) => floor + i))
  await until(async () => (await api.state(id)).body.lag === 0, 'all done')
  t.same((await api.state(id)).body.reset, { requested: '0', floor: String(floor) }, 'the state says so')
})

t.test('metrics count deliveries, redeliveries, acks and dead letters, with no consumer id or user key in a label', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: [`${alice.user}/pub/*`], from: 'new', maxDeliver: 2 })
  const w = api.worker(id)
  t.teardown(() => w.close())
  await alice.put('/pub/1', 'x')
  await w.received(1)
  await w.ack([w.got[0]!.id], 'nak')
  await w.received(2)
  await w.ack([w.got[1]!.id])
  await alice.put('/pub/2', 'x')
  await w.received(3)
  await w.ack([w.got[2]!.id], 'term')
  const text = await server.ctx.metrics.registry.metrics()
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])
  t.equal(value('hearth_consumer_deliveries_total'), 3)
  t.equal(value('hearth_consumer_redeliveries_total'), 1)
  t.equal(value('hearth_consumer_acks_total'), 1)
  t.match(text, /hearth_consumer_dead_letters_total\{reason="term"\} 1/)
  t.equal(value('hearth_consumers'), 1)
  t.equal(value('hearth_consumer_streams'), 1)
  t.equal(value('hearth_consumer_pending'), 0)
  t.ok(value('hearth_consumer_commits_total') >= 1, 'commits of its state')
  t.ok(value('hearth_consumer_changes_total') >= value('hearth_consumer_commits_total'), 'each grouping one change or more')
  t.notOk(text.includes(id) || text.includes(alice.user), 'no consumer id, no user key')
})

t.test("an ack and the lease of the user's next event it lets go are one commit", async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: [`${alice.user}/pub/*`], from: 'new' })
  for (const n of [1, 2, 3]) await alice.put(`/pub/${n}`, 'x')
  const w = api.worker(id)
  t.teardown(() => w.close())
  await w.received(1)
  t.equal((await api.state(id)).body.pending, 1, 'one event of the user out at a time')
  const commits = async () => Number(/^hearth_consumer_commits_total (\S+)$/m.exec(await server.ctx.metrics.registry.metrics())![1])
  const before = await commits()
  await w.ack([w.got[0]!.id])
  await w.received(2)
  t.equal(await commits(), before + 1, 'one commit acked the first and leased the second')
  t.equal(w.got[1]!.seq, String(Number(w.got[0]!.seq) + 1))
})

t.test('a delivery step the store fails is logged, and delivery goes on once the store answers', async (t) => {
  const records: { level: number; msg: string; err?: { message?: string } }[] = []
  const log = pino({ level: 'warn', base: undefined }, { write: (line: string) => void records.push(JSON.parse(line) as (typeof records)[number]) })
  const server = await startTestServer(t, {}, log as unknown as FastifyBaseLogger)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: [`${alice.user}/pub/*`], from: 'new' })
  const w = api.worker(id)
  t.teardown(() => w.close())
  await until(async () => (await api.state(id)).body.streams === 1, 'the stream open')
  // the store fails every change of consumers for a while: a disk gone, then back
  const store = server.ctx.store
  const updateConsumer = store.updateConsumer.bind(store)
  store.updateConsumer = () => Promise.reject(new Error('the disk is gone'))
  await alice.put('/pub/1', 'x')
  await until(() => records.some((r) => r.msg.startsWith('a consumer delivery step failed') && r.err?.message === 'the disk is gone'), 'the failure logged')
  t.equal(records.find((r) => r.msg.startsWith('a consumer delivery step failed'))!.level, 40, 'as a warning')
  store.updateConsumer = updateConsumer
  await alice.put('/pub/2', 'x')
  await w.received(1, 'the first event, once the store answers')
  await w.ack([w.got[0]!.id])
  await w.received(2, 'then the second')
  t.same(w.got.map((d) => `${d.path} ${d.deliveries}`), ['/pub/1 1', '/pub/2 1'], 'each once, in order')
})

t.test('maxPending caps the events out unacked at once', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const users = await Promise.all(Array.from({ length: 5 }, () => newUser(server)))
  const api = new ConsumerApi(server.url, owner)
  const id = await api.create({ filters: ['*/pub/p/*'], from: 'new', maxPending: 2, ackWaitMs: 60_000 })
  const w = api.worker(id)
  t.teardown(() => w.close())
  t.equal(await w.status(), 200)
  for (const u of users) await u.put('/pub/p/1', 'x')
  await w.received(2)
  await until(async () => (await api.state(id)).body.pending === 2, 'two out')
  await w.ack([w.got[0]!.id])
  await w.received(3, 'one more once one is acked')
  await until(async () => (await api.state(id)).body.pending === 2, 'two out again')
  t.equal(w.got.length, 3, 'never more than two out')
})

t.test("one user's events filling maxPending hold up no other user's", async (t) => {
  const server = await startTestServer(t)
  const [owner, alice, bob] = await Promise.all([newUser(server), newUser(server), newUser(server)])
  const api = new ConsumerApi(server.url, owner)
  const id = await api.create({ filters: ['*/pub/p/*'], from: 'new', maxPending: 2, ackWaitMs: 60_000 })
  for (const n of [1, 2, 3]) await alice.put(`/pub/p/${n}`, 'x')
  await bob.put('/pub/p/1', 'x')
  const w = api.worker(id)
  t.teardown(() => w.close())
  await w.received(2, "Alice's first and Bob's")
  t.same(w.got.map((d) => `${d.user === alice.user ? 'alice' : 'bob'} ${d.path}`), ['alice /pub/p/1', 'bob /pub/p/1'], "Bob's event goes while Alice's wait in line behind her first")
})

t.test("a session that may read less of /priv/ than the consumer's maker gets 403 for its events; HEAD joins no worker; acked tells nobody which ids exist", async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  await alice.put('/priv/diary.txt', 'secret')
  const id = await api.create({ filters: [`${alice.user}/*`], from: 'start', ack: 'automatic' })
  // another session of Alice's key, for one app's public folder
  const app = new HomeserverClient(server.url, alice.keypair)
  await app.signin('/pub/app/:rw')
  const appApi = new ConsumerApi(server.url, app)
  const routes: [string, string, unknown?][] = [['GET', `/consumers/${id}/events`], ['GET', `/consumers/${id}/dead`], ['GET', `/consumers/${id}`],
    ['POST', `/consumers/${id}/ack`, { term: ['1'] }], ['POST', `/consumers/${id}/reset`, { from: 'new' }], ['DELETE', `/consumers/${id}`],
    ['PUT', `/consumers/${id}`, { filters: [`${alice.user}/*`], from: 'start', ack: 'automatic' }],
    ['PUT', `/consumers/${id}`, { filters: [`${alice.user}/priv/guess/*`] }], ['GET', `/consumers/${id}/acked?event=1`]]
  for (const [method, path, body] of routes) {
    const res = await appApi.call(method, path, body)
    t.equal(res.status, 403, `${method} ${path}: 403 for the narrower session`)
    t.match(res.body, { error: 'Forbidden' })
  }
  t.same((await appApi.call('GET', '/consumers')).body, { consumers: [] }, 'and its list leaves the consumer out')
  const diary = new HomeserverClient(server.url, alice.keypair)
  await diary.signin('/priv/:rw')
  t.equal((await new ConsumerApi(server.url, diary).state(id)).status, 200, 'a session that reads all of /priv/ uses it, though it may not read /pub/')
  // HEAD: the headers, and nobody took the event
  const head = await fetch(`${server.url}/consumers/${id}/events`, { method: 'HEAD', headers: alice.headers() })
  t.equal(head.status, 200)
  t.match((await api.state(id)).body, { ackFloor: '0000000000000', streams: 0 }, 'no worker joined, nothing counted as written')
  const w = api.worker(id)
  t.teardown(() => w.close())
  await w.received(1, 'the private event, to a GET of the session that made it')
  t.match(w.got[0], { path: '/priv/diary.txt' })
  // acked from anyone else: the same answer whether the id exists or not
  const bob = await newUser(server)
  const asBob = { ...bob.headers(), 'pubky-host': alice.user }
  const answers = await Promise.all([id, ulid()].map(async (c) => (await fetch(`${server.url}/consumers/${c}/acked?event=1`, { headers: asBob })).status))
  t.same(answers, [401, 401], 'an id in use and one not: both 401, as the owner routes answer')
  const far = await api.call('GET', `/consumers/${id}/acked?event=18446744073709551615`)
  t.equal(far.status, 400, 'an event past any seq: 400, not a failure of the server')
  t.match(far.body, { error: 'FutureCursor' })
})

t.test('hostile input gets a 4xx in the §7 shape, and the server goes on', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({})
  const bodies = ['null', '[]', '"x"', '{"filters":"*"}', '{"filters":[1]}', '{"from":{"after":"ZZZZZZZZZZZZZZ"}}', '{"from":{"after":"18446744073709551616"}}',
    '{"ackWaitMs":-1}', '{"maxPending":1e9}', '{"maxDeliver":1.5}', '{"__proto__":{"x":1}}', '{"filters":["\\u0000"]}', 'x'.repeat(2 * 1024 * 1024)]
  for (const body of bodies) {
    const r = await api.put(ulid(), body)
    t.ok([400, 413].includes(r.status), `PUT ${body.slice(0, 40)}: ${r.status}`)
    t.equal(typeof r.body?.error, 'string')
  }
  for (const body of ['[]', '{"ack":"x"}', '{"ack":[1]}', '{"nak":["ZZZZZZZZZZZZZZ"]}', '{"term":["0"]}', `{"ack":${JSON.stringify(Array.from({ length: 10_001 }, () => '0000000000002'))}}`]) {
    const r = await api.ack(id, JSON.parse(body))
    t.equal(r.status, 400, `ack ${body.slice(0, 40)}`)
  }
  for (const q of ['', '?event=', '?event=x', '?event=0000000000002&timeoutMs=-1', '?event=0000000000002&timeoutMs=1e3', '?event=99999999999999999999999']) {
    const r = await api.call('GET', `/consumers/${id}/acked${q}`)
    t.equal(r.status, 400, `acked${q}`)
  }
  for (const bad of ['%00', 'x'.repeat(26), '01JF0000000000000000000001/../x', 'ZZZZZZZZZZZZZZZZZZZZZZZZZZ']) {
    t.ok([400, 404].includes((await api.state(bad)).status), `GET /consumers/${bad}`)
  }
  t.equal(await chunkedPut(`${server.url}/consumers/${ulid()}`, alice.headers(), 2 * 1024 * 1024), 413, 'a chunked body past 1 MiB: 413, not a reset')
  t.equal((await api.state(id)).status, 200, 'and it goes on')
})

/** PUTs `size` bytes in chunks of 64 KiB, with no length; resolves with the answer's status, however the upload ends. */
function chunkedPut(url: string, headers: Record<string, string>, size: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', headers: { ...headers, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    // writes after the server closed its side fail; what counts is the answer, or none
    req.on('error', (err) => reject(err))
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    let sent = 0
    const more = (): void => {
      while (sent < size) {
        sent += chunk.length
        if (!req.write(chunk)) return void req.once('drain', more)
      }
      req.end()
    }
    more()
  })
}

t.test('events that match nothing move the position too, so the lag comes down', async (t) => {
  const server = await startTestServer(t, { KEEPALIVE_MS: '200' })
  const alice = await newUser(server)
  const api = new ConsumerApi(server.url, alice)
  const id = await api.create({ filters: [`${alice.user}/pub/wanted/*`], from: 'new' })
  const w = api.worker(id)
  t.teardown(() => w.close())
  t.equal(await w.status(), 200)
  for (let i = 0; i < 5; i++) await alice.put(`/pub/other/${i}`, 'x')
  await until(async () => (await api.state(id)).body.lag === 0, 'no lag once the keepalive stepped')
  t.equal((await api.state(id)).body.ackFloor, '000000000000A', 'the floor passed what matched nothing')
  t.same(w.got, [])
})
