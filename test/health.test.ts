import t from 'tap'
import { startTestServer, tempDir } from './helpers/server.js'
import { LevelStore } from '../src/kv/level/store.js'
import { aroundCommit } from './helpers/store-wrap.js'
import { Writer } from '../src/events/writer.js'
import { EventLog } from '../src/events/event-log.js'
import { readiness } from '../src/readiness.js'

const get = async (url: string) => {
  const res = await fetch(url)
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() as unknown }
}

t.test('/healthz and /readyz answer 200 while the storage answers', async (t) => {
  const server = await startTestServer(t)
  t.same(await get(`${server.url}/healthz`), { status: 200, type: 'application/json; charset=utf-8', body: { status: 'ok' } })
  t.same(await get(`${server.url}/readyz`), { status: 200, type: 'application/json; charset=utf-8', body: { status: 'ok' } })
})

t.test('/readyz is 503 with the reason once the storage fails; /healthz stays 200', async (t) => {
  const server = await startTestServer(t)
  await server.ctx.store.close()
  const ready = await get(`${server.url}/readyz`)
  t.equal(ready.status, 503)
  t.same(ready.body, { error: 'NotReady', message: 'the storage failed a read' }, 'the reason, without internals')
  t.same(await get(`${server.url}/healthz`), { status: 200, type: 'application/json; charset=utf-8', body: { status: 'ok' } })
})

t.test('a writer whose commit does not finish makes the server unready, and ready again after', async (t) => {
  // The real engine, whose commits wait at a gate: the disk of a writer stuck in fsync.
  const { store: inner } = await LevelStore.open(tempDir(t))
  t.teardown(() => inner.close())
  let gate: Promise<void> | undefined
  const store = aroundCommit(inner, async (tx, work) => {
    await gate
    return work(tx)
  })
  const events = await EventLog.open(store)
  const writer = new Writer(store, events, 1024 ** 2)
  await store.createUser('u', 0)
  const probe = { storage: () => store.ping(), busySince: () => writer.busySince, stuckAfterMs: 0 }

  t.equal(writer.busySince, undefined, 'idle: no group in flight')
  t.equal(await readiness(probe), undefined, 'ready')
  let release!: () => void
  gate = new Promise((r) => (release = r))
  const write = writer.submit({ type: 'PUT', user: 'u', path: '/pub/a', content: { size: 1, hash: 'h', type: 'text/plain', inline: Uint8Array.of(1) } })
  t.type(writer.busySince, 'number', 'a group is in flight')
  t.match(await readiness(probe), /^the writer has been committing one group for \d+ s$/, 'past the limit: not ready, and why')
  t.equal(await readiness({ ...probe, stuckAfterMs: 60_000 }), undefined, 'within the limit: ready')
  release()
  t.equal((await write).seq, 1)
  await writer.idle()
  t.equal(writer.busySince, undefined, 'the group committed, the writer is idle')
  t.equal(await readiness(probe), undefined, 'ready again')
})

t.test('a storage read that never answers makes the server unready', async (t) => {
  const reason = await readiness({ storage: () => new Promise(() => {}), busySince: () => undefined })
  t.equal(reason, 'the storage did not answer a read within 2 s')
})
