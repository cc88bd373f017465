import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { consume, Consumers, HomeserverClient, idOf, newConsumerId, type ConsumedEvent, type ConsumerOwner } from 'hearth-homeserver-client'
import { AckedWrites } from './helpers/acked-writes.js'
import { HttpProxy } from './helpers/http-proxy.js'
import { runCli, startCli } from './helpers/cli.js'
import { newUser, startTestServer, tempDir } from './helpers/server.js'
import { until } from './helpers/until.js'

/**
 * The client side of durable consumers: `consume()` workers sharing one consumer, acks sent
 * in batches, a throw handed back and delivered again, `close()` sending what is in hand; the
 * `Consumers` routes; `newConsumerId`; and `hearth consumer` from the command line.
 */

t.test('newConsumerId: 26 Crockford characters, time first, so ids sort by creation', async (t) => {
  const a = newConsumerId(1_700_000_000_000)
  const b = newConsumerId(1_700_000_000_001)
  t.match(a, /^[0-9A-HJKMNP-TV-Z]{26}$/)
  t.ok(a < b)
  t.equal(newConsumerId(0, new Uint8Array(10)), '0'.repeat(26))
  t.equal(newConsumerId(2 ** 48 - 1, new Uint8Array(10).fill(255)), '7' + 'Z'.repeat(25))
  t.throws(() => newConsumerId(2 ** 48), RangeError)
})

t.test('three workers share an explicit consumer: every event processed, a throw comes back, nothing left pending', async (t) => {
  const server = await startTestServer(t)
  const users = await Promise.all([0, 1, 2, 3].map(() => newUser(server)))
  const owner = users[0]!
  const consumers = new Consumers(owner)
  const id = newConsumerId()
  const created = await consumers.create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })
  t.equal(created.id, id)
  t.same((await consumers.create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })).id, id, 'the same PUT again answers the same consumer')

  const acked = new AckedWrites()
  const seen = new Map<string, ConsumedEvent[]>()
  let thrown: string | undefined
  const handler = (worker: number) => async (e: ConsumedEvent) => {
    // the first event of the second user fails once: it must come back with deliveries 2
    if (thrown === undefined && e.user === users[1]!.user) {
      thrown = e.id
      throw new Error('not now')
    }
    seen.set(e.id, [...(seen.get(e.id) ?? []), { ...e, worker } as ConsumedEvent & { worker: number }])
  }
  const errors: unknown[] = []
  const workers = [0, 1, 2].map((w) => consume({ owner, consumer: id, handler: handler(w), concurrency: 2, onError: (err) => errors.push(err) }))
  t.teardown(() => Promise.all(workers.map((w) => w.close())))

  for (let i = 0; i < 10; i++) for (const u of users) await acked.put(u, `/pub/app/${i}.txt`, `${i}`)
  const ids = acked.events.map((e) => idOf(e.seq))
  await until(() => ids.every((i) => seen.has(i)), 'every event processed by some worker', 60_000, () => `${seen.size} of ${ids.length}`)
  t.equal(errors.length, 1, 'the one throw reached onError')
  t.equal(seen.get(thrown!)?.at(-1)?.deliveries, 2, 'the event that threw came again, as its second delivery')
  const workersUsed = new Set([...seen.values()].flat().map((e) => (e as ConsumedEvent & { worker: number }).worker))
  t.ok(workersUsed.size >= 2, `the work was shared (${workersUsed.size} workers took events)`)

  await Promise.all(workers.map((w) => w.close()))
  const state = await consumers.get(id)
  t.equal(state.pending, 0, 'close() sent the acks in hand: nothing pending')
  t.equal(state.ackFloor, ids.at(-1), 'the ack floor is the last event')
  t.equal(workers.reduce((n, w) => n + w.processed, 0), ids.length, 'each event processed once (the throw not counted)')
  t.same((await consumers.acked(id, ids[0]!, 1000)).acked, true, 'acked() says the first event was processed')

  // acks gathered for a minute: only close() sends this one
  const slow = consume({ owner, consumer: id, handler: () => {}, ackBatchMs: 60_000 })
  await acked.put(users[2]!, '/pub/app/late.txt', 'late')
  await until(() => slow.processed === 1, 'the late event processed')
  await slow.close()
  const after = await consumers.get(id)
  t.equal(after.pending, 0, 'close() sent the ack it held')
  t.equal(after.ackFloor, idOf(acked.events.at(-1)!.seq))
  t.same((await consumers.list()).map((c) => c.id), [id])
  await consumers.delete(id)
  await t.rejects(consumers.get(id), /HTTP 404/, 'deleted')
})

t.test('hearth consumer: create, ls, tail --limit, show, ack --term, rm', async (t) => {
  const server = await startTestServer(t)
  const cwd = tempDir(t)
  const env = { HEARTH_URL: server.url }
  t.equal((await runCli(['keygen'], { cwd, env })).code, 0)
  t.equal((await runCli(['signup'], { cwd, env })).code, 0)
  const created = await runCli(['consumer', 'create', '--from', 'new'], { cwd, env })
  t.equal(created.code, 0, created.stderr)
  const id = created.stdout.trim()
  t.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/, 'prints the new id')

  writeFileSync(join(cwd, 'a.txt'), 'a')
  const events: string[] = []
  for (const name of ['one', 'two', 'three']) {
    const put = await runCli(['put', `/pub/${name}.txt`, 'a.txt'], { cwd, env })
    t.equal(put.code, 0)
    events.push(put.stdout.trim().split(' ')[1]!)
  }
  const ls = await runCli(['consumer', 'ls'], { cwd, env })
  t.match(ls.stdout, new RegExp(`^${id} explicit floor \\w{13} lag 3 pending 0 \\*$`, 'm'), 'ls: one line, three events behind')

  const tail = startCli(['consumer', 'tail', id, '--limit', '2'], { cwd, env })
  const run = await tail.done
  t.equal(run.code, 0, run.stderr)
  const lines = run.stdout.trim().split('\n')
  t.equal(lines.length, 2)
  t.match(lines[0], /^\w{13} PUT pubky:\/\/\w{52}\/pub\/one\.txt 1$/)
  t.match(lines[1], /\/pub\/two\.txt 1$/)

  const show = JSON.parse((await runCli(['consumer', 'show', id], { cwd, env })).stdout) as { ackFloor: string; lag: number; pending: number }
  t.equal(show.ackFloor, lines[1]!.split(' ')[0], 'tail acked what it printed: the floor is the second event')
  t.equal(show.lag, 1)

  // the third event, out to a worker that holds it: parked as dead from the command line (put printed its id)
  const owner = await signedIn(server.url, cwd)
  let release!: () => void
  const held = new Promise<void>((resolve) => (release = resolve))
  let holding: string | undefined
  const worker = consume({ owner, consumer: id, handler: async (e) => { holding = e.id; await held } })
  await until(() => holding !== undefined, 'a worker holds the third event')
  t.equal(holding, events[2])
  const term = await runCli(['consumer', 'ack', id, events[2]!, '--term'], { cwd, env })
  t.equal(term.code, 0, term.stderr)
  release()
  await worker.close()
  const dead = await new Consumers(owner).dead(id)
  t.same(dead.map((e) => [e.id, e.reason]), [[events[2], 'term']], 'the event is dead, by term')
  const rm = await runCli(['consumer', 'rm', id], { cwd, env })
  t.equal(rm.code, 0)
  const gone = await runCli(['consumer', 'show', id], { cwd, env })
  t.equal(gone.code, 1)
  t.match(gone.stderr, /consumer show: 404/)
  const bad = await runCli(['consumer', 'create', '--max-deliver', 'lots'], { cwd, env })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--max-deliver: expected a whole number/)
})

/** The CLI's user, signed in from its key file, for checks beside the CLI. */
async function signedIn(url: string, cwd: string): Promise<HomeserverClient> {
  const { readFileSync } = await import('node:fs')
  const client = await HomeserverClient.fromSecret(url, readFileSync(join(cwd, 'hearth.key'), 'utf8').trim())
  await client.signin()
  return client
}

/** `owner` reached through `proxy`: its session, another address. */
function through(proxy: HttpProxy, owner: HomeserverClient): ConsumerOwner {
  return { url: proxy.url, headers: (extra) => owner.headers(extra) }
}

t.test('a worker keeps several ack requests on their way, and close() sends what waited for them', async (t) => {
  const server = await startTestServer(t)
  const users = await Promise.all([0, 1, 2, 3, 4].map(() => newUser(server)))
  const owner = users[0]!
  const id = newConsumerId()
  await new Consumers(owner).create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })

  // the worker's ack requests reach the server only when the gate opens
  const sent: string[][] = []
  let open!: () => void
  const gate = new Promise<void>((resolve) => (open = resolve))
  const proxy = await HttpProxy.start(t, server.url, async (req) => {
    if (!req.url.endsWith('/ack')) return
    sent.push((JSON.parse(req.body) as { ack: string[] }).ack)
    await gate
  })

  const worker = consume({ owner: through(proxy, owner), consumer: id, handler: () => {} })
  t.teardown(() => worker.close())
  t.teardown(() => open()) // first: a failed check must not leave close() waiting on the gate
  const acked = new AckedWrites()
  // one event of each user, one after another: each ack is gathered alone
  for (const [i, u] of users.entries()) {
    await acked.put(u, `/pub/app/${i}.txt`, `${i}`)
    await until(() => worker.processed === i + 1, `event ${i + 1} processed`)
    if (i < 4) await until(() => sent.length === i + 1, `ack request ${i + 1} sent while those before it wait for their answers`)
  }
  t.same(sent.map((ack) => ack.length), [1, 1, 1, 1], 'four requests on their way, one ack each')
  t.equal(sent.length, 4, 'the fifth ack waits for an answer')
  open()
  await worker.close()
  t.same(sent.flat().sort(), acked.events.map((e) => idOf(e.seq)).sort(), 'every ack sent, once')
  t.equal((await new Consumers(owner).get(id)).pending, 0, 'nothing pending')
})

t.test('the acks of the events one read brought go in one request', async (t) => {
  const server = await startTestServer(t)
  const users = await Promise.all([0, 1, 2].map(() => newUser(server)))
  const owner = users[0]!
  const id = newConsumerId()
  await new Consumers(owner).create(id, { filters: ['*'], from: 'new', ack: 'explicit' })
  // three users' events, there before the worker: its stream's first write carries them all
  const acked = new AckedWrites()
  for (const [i, u] of users.entries()) await acked.put(u, `/pub/app/${i}.txt`, `${i}`)
  const sent: string[][] = []
  const proxy = await HttpProxy.start(t, server.url, (req) => void (req.url.endsWith('/ack') && sent.push((JSON.parse(req.body) as { ack: string[] }).ack)))
  const worker = consume({ owner: through(proxy, owner), consumer: id, handler: async () => {} })
  t.teardown(() => worker.close())
  await until(async () => (await new Consumers(owner).get(id)).pending === 0 && worker.processed === 3, 'all three processed and acked')
  t.same(sent.map((ack) => ack.length), [3], 'one request, with the three acks')
  t.same(sent.flat().sort(), acked.events.map((e) => idOf(e.seq)).sort())
})

t.test('workers of one consumer in one process share their ack requests: what they gathered leaves together', async (t) => {
  const server = await startTestServer(t)
  const users = await Promise.all(Array.from({ length: 12 }, () => newUser(server)))
  const owner = users[0]!
  const consumers = new Consumers(owner)
  const id = newConsumerId()
  await consumers.create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })
  const sent: string[][] = []
  const proxy = await HttpProxy.start(t, server.url, (req) => void (req.url.endsWith('/ack') && sent.push((JSON.parse(req.body) as { ack: string[] }).ack)))
  // acks wait for a minute, or for a worker to stop: then whatever both gathered leaves
  const handled: number[] = []
  const workers = [0, 1].map((w) => consume({ owner: through(proxy, owner), consumer: id, ackBatchMs: 60_000, handler: () => void handled.push(w) }))
  t.teardown(() => Promise.all(workers.map((w) => w.close())))
  await until(async () => (await consumers.get(id)).streams === 2, 'both streams open')
  // one event per user (a user's next would wait for the ack held back), until each worker took one:
  // which stream a step serves first depends on how many steps ran before it
  const acked = new AckedWrites()
  for (const [i, u] of users.entries()) {
    await acked.put(u, `/pub/app/${i}.txt`, `${i}`)
    await until(() => handled.length === i + 1, `event ${i + 1} processed`)
    if (handled.includes(0) && handled.includes(1)) break
  }
  t.ok(handled.includes(0) && handled.includes(1), `each worker took some (${handled.join(' ')})`)
  t.same(sent, [], 'no ack sent yet')
  await Promise.all(workers.map((w) => w.close()))
  t.equal(sent.length, 1, "one request carried both workers' acks")
  t.same(sent.flat().sort(), acked.events.map((e) => idOf(e.seq)).sort(), 'every ack, once')
  t.equal((await consumers.get(id)).pending, 0, 'nothing pending')
})

t.test("a handler's end decides its ack, whatever it returns: a synchronous throw comes back, a thenable is waited for", async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const consumers = new Consumers(owner)
  const id = newConsumerId()
  await consumers.create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })
  const acked = new AckedWrites()
  await acked.put(owner, '/pub/app/a.txt', 'a')
  const [event] = acked.events.map((e) => idOf(e.seq))
  const calls: number[] = []
  let finish: (() => void) | undefined
  const errors: unknown[] = []
  const naks: string[] = []
  const proxy = await HttpProxy.start(t, server.url, (req) => {
    if (req.url.endsWith('/ack')) naks.push(...(JSON.parse(req.body) as { nak?: string[] }).nak ?? [])
  })
  const worker = consume({
    owner: through(proxy, owner), consumer: id, onError: (err) => errors.push(err),
    handler: (e) => {
      calls.push(e.deliveries)
      // the first delivery throws before returning anything; the second returns a thenable that is no Promise
      if (e.deliveries === 1) throw new Error('not now')
      return { then: (done: () => void) => void (finish = done) } as unknown as Promise<void>
    },
  })
  t.teardown(() => worker.close())
  await until(() => finish !== undefined, 'the event back after the throw, its thenable pending')
  t.same(calls, [1, 2], 'the throw handed the event back at once: its second delivery')
  t.equal(errors.length, 1, 'the throw reached onError')
  t.same(naks, [`${event}:1`], 'its "not now" named the delivery it was about')
  const state = await consumers.get(id)
  t.equal(state.pending, 1, 'while its thenable is pending the event is out, not acked')
  t.same((await consumers.acked(id, event!, 0)).acked, false)
  finish!()
  await until(async () => (await consumers.get(id)).pending === 0, 'acked once the thenable resolved')
  t.equal(worker.processed, 1)
})

t.test('an onError that throws is passed over: its slot is freed, the worker reads on, and close() returns', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const id = newConsumerId()
  await new Consumers(owner).create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })
  const acked = new AckedWrites()
  let threw = false
  const retries: unknown[] = []
  const worker = consume({
    owner, consumer: id, concurrency: 1,
    handler: () => {
      if (threw) return
      threw = true
      throw new Error('not now')
    },
    onError: () => { throw new Error('onError failed too') },
    onRetry: (r) => void retries.push(r),
  })
  await acked.put(owner, '/pub/app/a.txt', 'a')
  await acked.put(owner, '/pub/app/b.txt', 'b')
  // with its one slot lost, the worker would take nothing more
  await until(() => worker.processed === 2, 'both events processed by a worker of one slot')
  t.same(retries, [], 'on the stream it had: the throw did not break it')
  await worker.close()
  t.equal((await new Consumers(owner).get(id)).pending, 0, 'nothing pending')
})

t.test('an ack request left unanswered gives up after the answer time, so close() returns', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const id = newConsumerId()
  await new Consumers(owner).create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })
  // a server that takes ack requests and never answers them
  const proxy = await HttpProxy.start(t, server.url, (req) => (req.url.endsWith('/ack') ? new Promise(() => {}) : undefined))
  const worker = consume({ owner: through(proxy, owner), consumer: id, handler: () => {}, idleTimeoutMs: 1000 })
  await new AckedWrites().put(owner, '/pub/app/a.txt', 'a')
  await until(() => worker.processed === 1, 'the event processed, its ack on its way')
  await worker.close()
  t.pass('close() returned')
})

t.test('close() sends again the acks of a request that failed, so they land', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const consumers = new Consumers(owner)
  const id = newConsumerId()
  await consumers.create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })
  // the first ack request fails on the way (its connection dropped); the next go through
  const acks: string[] = []
  const proxy = await HttpProxy.start(t, server.url, (req) => {
    if (!req.url.endsWith('/ack')) return
    acks.push(req.body)
    if (acks.length === 1) throw new Error('dropped')
  })
  let finish: (() => void) | undefined
  const worker = consume({ owner: through(proxy, owner), consumer: id, handler: () => new Promise<void>((done) => (finish = done)) })
  t.teardown(() => worker.close())
  await new AckedWrites().put(owner, '/pub/app/a.txt', 'a')
  await until(() => finish !== undefined, 'the handler running')
  // stopped while the handler runs: its ack leaves after, fails once, and goes again
  const closed = worker.close()
  finish!()
  await closed
  t.equal(acks.length, 2, 'sent twice')
  t.equal((await consumers.get(id)).pending, 0, 'and acked')
})

t.test("a failed ack request goes again a second later even when another worker's acks wait for their batch", async (t) => {
  const server = await startTestServer(t)
  const [owner, other] = await Promise.all([newUser(server), newUser(server)])
  const consumers = new Consumers(owner!)
  const id = newConsumerId()
  await consumers.create(id, { filters: ['*'], from: 'new', ack: 'explicit', ackWaitMs: 60_000 })
  // the first ack request is held, then dropped; the next go through
  const acks: string[] = []
  let drop!: () => void
  const dropped = new Promise<void>((resolve) => (drop = resolve))
  const proxy = await HttpProxy.start(t, server.url, async (req) => {
    if (!req.url.endsWith('/ack')) return
    acks.push(req.body)
    if (acks.length > 1) return
    await dropped
    throw new Error('dropped')
  })
  // acks wait a minute for company, unless a worker stops; a worker gives up on its acks after 20 s
  const options = { owner: through(proxy, owner!), consumer: id, ackBatchMs: 60_000, idleTimeoutMs: 20_000, handler: () => {} }
  const first = consume(options)
  t.teardown(() => first.close())
  await until(async () => (await consumers.get(id)).streams === 1, 'the first worker open')
  const acked = new AckedWrites()
  await acked.put(owner!, '/pub/app/a.txt', 'a')
  await until(() => first.processed === 1, 'its event processed')
  const second = consume(options)
  t.teardown(() => second.close())
  await until(async () => (await consumers.get(id)).streams === 2, 'the second worker open')
  // the first stops: its ack leaves at once, and is held
  const closed = first.close()
  await until(() => acks.length === 1, 'the first ack request on its way')
  // meanwhile the second worker's ack waits for its batch
  await acked.put(other!, '/pub/app/b.txt', 'b')
  await until(() => second.processed === 1, "the second worker's event processed")
  drop()
  await closed
  t.equal((await consumers.get(id)).pending, 0, "both acked once close() returned: the failed request went again with the waiting ack, not after the batch's minute")
  t.equal(acks.length, 2, 'sent twice')
})

t.test('a worker whose first read of the consumer fails tries again, as a dropped stream does', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const id = newConsumerId()
  await new Consumers(owner).create(id, { filters: ['*'], from: 'new', ack: 'explicit' })
  let reads = 0
  const proxy = await HttpProxy.start(t, server.url, (req) => {
    if (req.method === 'GET' && req.url.split('?')[0] === `/consumers/${id}` && ++reads === 1) throw new Error('dropped')
  })
  const retries: Error[] = []
  const worker = consume({ owner: through(proxy, owner), consumer: id, handler: () => {}, backoff: { baseMs: 10 }, onRetry: (r) => retries.push(r.error) })
  t.teardown(() => worker.close())
  await new AckedWrites().put(owner, '/pub/app/a.txt', 'a')
  await until(() => worker.processed === 1, 'the event processed once the read went through')
  t.equal(retries.length, 1, 'one retry, told to onRetry')
})
