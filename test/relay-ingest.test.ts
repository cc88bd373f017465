import t from 'tap'
import { EventLog } from '../src/events/event-log.js'
import { RelayIngest, type Attempt, type OriginEvent } from '../src/relay/ingest.js'
import { openTestStore } from './helpers/engine.js'
import { parseFilter } from '../src/subscriptions/filter.js'
import { randomKeypair } from '../src/auth/keys.js'
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

t.test("followed filters' cursors: an event two of them match lands once, from two streams in one commit group, or from another process on the database", async (t) => {
  const { store, another } = await openTestStore(t)
  const log = await EventLog.open(store)
  t.teardown(() => log.close())
  const ingest = new RelayIngest(store, log)
  const user = randomKeypair().z32
  const origin = (seq: number): OriginEvent => ({ type: 'DEL', user, path: `/pub/${seq}`, ts: seq, homeserver: HS, originSeq: seq })
  // two streams of one process, each with a filter of the user's: never stored before, both in one group
  const cursor = (filter: string) => ingest.book.filterCursor(HS, parseFilter(filter)).name
  const whole: Attempt = { upstream: 'whole', homeserver: HS, cursors: [cursor(`${user}/*`)] }
  const narrow: Attempt = { upstream: 'narrow', homeserver: HS, cursors: [cursor(`${user}/pub/*`)] }
  const both = await Promise.all([1, 2, 3].flatMap((seq) => [ingest.add(whole, origin(seq)), ingest.add(narrow, origin(seq))]))
  t.same(both, [true, false, true, false, true, false], 'the first of each pair appended, the second found covered in the same group')
  if (another === undefined) return
  // a second process on the database, whose book knows none of the first's cursors
  const store2 = await another()
  const log2 = await EventLog.open(store2)
  t.teardown(() => log2.close())
  const second = new RelayIngest(store2, log2)
  const other: Attempt = { upstream: 'other', homeserver: HS, cursors: [second.book.filterCursor(HS, parseFilter(`${user}/pub/3*`)).name] }
  t.same(await Promise.all([2, 3, 4].map((seq) => second.add(other, origin(seq)))), [false, false, true], "what the first process's filters passed is not appended again")
  t.same((await store.readLog(0, 10, 10)).events.map((e) => e.originSeq), [1, 2, 3, 4], 'each once, in order')
})
