import t from 'tap'
import { EventLog } from '../src/events/event-log.js'
import { RelayIngest, type Attempt, type OriginEvent } from '../src/relay/ingest.js'
import { openTestStore } from './helpers/engine.js'
import { aroundCommit } from './helpers/store-wrap.js'

const HS = 'h'.repeat(52)
const USER = 'u'.repeat(52)
const origin = (seq: number): OriginEvent => ({ type: 'DEL', user: USER, path: `/pub/${seq}`, ts: seq, homeserver: HS, originSeq: seq })

t.test('a failed commit group ends its attempt: nothing after it lands, and the next attempt relays it all once', async (t) => {
  const { store: inner } = await openTestStore(t)
  let failNext = false
  const store = aroundCommit(inner, async (tx, work) => {
    const out = await work(tx)
    if (failNext) {
      failNext = false
      throw new Error('the disk is full')
    }
    return out
  })
  const log = await EventLog.open(store)
  t.teardown(() => log.close())
  const ingest = new RelayIngest(store, log)

  // 5,000 events queued at once: more than one group; the first group's commit fails
  failNext = true
  const first: Attempt = { upstream: 'up', homeserver: HS }
  const results = await Promise.allSettled(Array.from({ length: 5000 }, (_, i) => ingest.add(first, origin(i + 1))))
  t.ok(results.every((r) => r.status === 'rejected'), 'every event of the attempt is refused, the later groups too')
  t.equal(await store.head(), 0, 'nothing landed')
  t.same(await store.upstreamCursors(), [], 'and the cursor did not move')
  await t.rejects(ingest.add(first, origin(5001)), 'a failed attempt takes nothing more')

  const second: Attempt = { upstream: 'up', homeserver: HS }
  const appended = await Promise.all(Array.from({ length: 5000 }, (_, i) => ingest.add(second, origin(i + 1))))
  t.ok(appended.every((a) => a), 'the next attempt appends every event')
  const again = await Promise.all([1, 2, 5000].map((seq) => ingest.add(second, origin(seq))))
  t.same(again, [false, false, false], 'an event that comes twice is appended once')
  const events = (await store.readLog(0, 10_000, 10_000)).events
  t.same(events.map((e) => e.originSeq), Array.from({ length: 5000 }, (_, i) => i + 1), 'each once, in order')
  t.same(await store.upstreamCursors(), [{ upstream: 'up', homeserver: HS, cursor: 5000 }])

  const impostor: Attempt = { upstream: 'up', homeserver: 'i'.repeat(52) }
  await t.rejects(ingest.add(impostor, { ...origin(5001), homeserver: impostor.homeserver }), { name: 'Error' }, 'another homeserver under the same upstream is refused')
  t.equal(await store.head(), 5000)
})

t.test('a rewind sets the cursor back to 0 only while it stands where the rewind saw it', async (t) => {
  const { store } = await openTestStore(t)
  const log = await EventLog.open(store)
  t.teardown(() => log.close())
  const ingest = new RelayIngest(store, log)
  const attempt: Attempt = { upstream: 'up', homeserver: HS }
  await Promise.all([1, 2, 3].map((seq) => ingest.add(attempt, origin(seq))))
  t.equal(await ingest.rewind(attempt, 3), true, 'from where it stands, back to 0')
  t.same(await store.upstreamCursors(), [{ upstream: 'up', homeserver: HS, cursor: 0 }])
  t.equal(await ingest.add(attempt, origin(1)), true, "the upstream's new log comes from its start")
  t.equal(await ingest.rewind(attempt, 3), false, 'a second rewind from the old cursor (another process saw it too) changes nothing')
  t.same(await store.upstreamCursors(), [{ upstream: 'up', homeserver: HS, cursor: 1 }])
  t.same((await store.readLog(0, 10, 10)).events.map((e) => e.originSeq), [1, 2, 3, 1], 'what was relayed stays')
})
