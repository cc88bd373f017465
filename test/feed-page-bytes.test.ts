import t from 'tap'
import { EventFrames } from '../src/feed/frames.js'
import { EVENTS_STREAM, SUBSCRIBE } from '../src/feed/wire.js'
import { LONE_KEPT_BYTES, LogPages, PAGE, READ_RESERVE, eventBytes, type Lease } from '../src/feed/pages.js'
import { encodeStored } from '../src/events/stored.js'
import { MAX_PATH_BYTES } from '../src/paths.js'
import { startTestServer, newUser } from './helpers/server.js'
import { writeMany } from './helpers/feed.js'

// The pool of log pages that replays share counts bytes, not pages: the events it holds, the
// frames it keeps with them, and a reservation for each read under way. A pool a few pages
// large, over a log of events with paths near the 4 KB limit, shows the budget reached and
// held: kept frames give way first, readers wait for room, and every frame is still right.

const EVENTS = 4 * PAGE
// 15 segments of 250 characters JSON escapes and an index: the path is stored once as it is and
// twice escaped, so a page of these counts a little less than READ_RESERVE, and three read pages
// leave no room for a fourth read
const LONG = Array.from({ length: 15 }, () => '"'.repeat(250)).join('/')
const BUDGET = 3 * READ_RESERVE

t.test('the page pool keeps events and frames within its byte budget', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  await writeMany(owner, EVENTS, (i) => `/pub/b/${LONG}/${i}`, 16)
  const log = server.ctx.events
  t.equal(log.head, EVENTS)
  const pages = new LogPages(log, BUDGET)

  t.test('two readers of every page: frames are kept while they fit, and always right', async (t) => {
    const readers = [{}, {}]
    const cursors = [0, 0]
    let wrong = 0
    let overBudget = 0
    while (cursors.some((c) => c < log.head)) {
      for (const [r, reader] of readers.entries()) {
        if (cursors[r]! >= log.head) continue
        const lease = await pages.lease({}, cursors[r]!)
        const events = await lease.page.events
        for (const [i, ev] of events.entries()) {
          if (ev.seq <= cursors[r]!) continue
          if (lease.page.frameAt(i, ev, SUBSCRIBE, reader).toString() !== new EventFrames(ev).subscribeText) wrong++
          if (pages.stats().bytes > BUDGET) overBudget++
          cursors[r] = ev.seq
        }
        lease.release()
      }
    }
    const stats = pages.stats()
    t.comment(JSON.stringify(stats))
    t.equal(wrong, 0, 'every frame is the event encoded')
    t.equal(overBudget, 0, 'never more bytes counted than the budget')
    t.equal(stats.budget, BUDGET)
    t.ok(stats.peakBytes <= BUDGET, `peak ${stats.peakBytes} within ${BUDGET}`)
    t.ok(stats.peakBytes > BUDGET - 64 * 1024, 'kept frames filled the budget: it was reached, and held')
    t.equal(stats.reads, EVENTS / PAGE, 'each page read once')
    t.ok(stats.shared >= EVENTS / PAGE, 'the second reader shared each page')
  })

  t.test('a reader waits for room while the budget is leased, and gets its page once one is given back', async (t) => {
    // three leased pages at different cursors leave no room for a fourth read
    const held: Lease[] = []
    for (const after of [0, PAGE, 2 * PAGE]) {
      const lease = await pages.lease({}, after)
      await lease.page.events
      held.push(lease)
    }
    t.ok(pages.stats().bytes + READ_RESERVE > BUDGET, 'no room for another read')
    let served: Lease | undefined
    const waiting = pages.lease({}, 3 * PAGE).then((lease) => (served = lease))
    t.equal(pages.tryLease({}, 3 * PAGE + 1), undefined, 'a read ahead does not start either')
    t.equal(pages.stats().waiting, 1)
    await Promise.resolve()
    t.equal(served, undefined, 'the reader is still waiting')
    held.shift()!.release()
    const lease = await waiting
    t.equal(pages.stats().waiting, 0)
    const events = await lease.page.events
    t.same([events[0]?.seq, events.at(-1)?.seq], [3 * PAGE + 1, 4 * PAGE], 'its page is the one it asked for')
    t.ok(pages.stats().peakBytes <= BUDGET)
    lease.release()
    for (const l of held) l.release()
  })

  t.test('a kept page a reader leases again is held: it is not let go to make room', async (t) => {
    const pool = new LogPages(log, BUDGET)
    const first = await pool.lease({}, 0)
    await first.page.events
    first.release() // kept, no reader holds it
    const again = await pool.lease({}, 0)
    t.equal(again.page, first.page, 'the kept page serves the reader that comes back')
    const held = [again]
    for (const after of [PAGE, 2 * PAGE]) {
      const lease = await pool.lease({}, after)
      await lease.page.events
      held.push(lease)
    }
    t.equal(pool.stats().reads, 3)
    t.equal(pool.tryLease({}, 3 * PAGE), undefined, 'no room for a fourth read: every page is held')
    const other = pool.tryLease({}, 0)
    t.equal(other?.page, first.page, 'another reader at the held page shares it, not a read of its own')
    other?.release()
    t.equal(pool.stats().reads, 3)
    t.equal(pool.stats().held, 3)
    for (const l of held) l.release()
  })

  t.test('readers of a shared page write the same bytes: one Buffer per kept frame', async (t) => {
    const shared = new LogPages(log)
    const readers = [{}, {}, {}]
    const frames = await Promise.all(readers.map(async (reader) => {
      const lease = await shared.lease({}, 0)
      const events = await lease.page.events
      const mine = events.map((ev, i) => lease.page.frameAt(i, ev, EVENTS_STREAM, reader))
      lease.release()
      return mine
    }))
    const [first, second, third] = frames
    t.ok(first!.every((f) => typeof f === 'string'), 'the first reader encodes its own, as a lone reader does')
    t.ok(second!.every((f, i) => Buffer.isBuffer(f) && f === third![i]), 'the others get the one kept Buffer of each frame')
    t.ok(second!.every((f, i) => f.toString() === first![i]), 'holding the same frame')
  })

  t.test('a lone reader passes its pages on: the pool keeps them only while another stream reads the log', async (t) => {
    const walk = async (pool: LogPages): Promise<number[]> => {
      const held: number[] = []
      for (let after = 0; after < EVENTS; after += PAGE) {
        const lease = await pool.lease({}, after)
        await lease.page.events
        lease.release()
        held.push(pool.stats().held)
      }
      return held
    }
    // each page here counts more than LONE_KEPT_BYTES: a lone reader's pool keeps the last one only
    t.ok(READ_RESERVE - 64 * 1024 > LONE_KEPT_BYTES)
    t.same(await walk(new LogPages(log, 8 * READ_RESERVE, () => 1)), [1, 1, 1, 1], 'alone: only the page just given back stays')
    t.same(await walk(new LogPages(log, 8 * READ_RESERVE, () => 2)), [1, 2, 3, 4], 'with another stream reading: every page stays, within the budget')
  })

  t.test('an event counts all the stored text it keeps, and no event a write makes counts more than a read reserves', async (t) => {
    const lease = await new LogPages(log).lease({}, 0)
    const events = await lease.page.events
    lease.release()
    // a StoredEvent's fields are slices of its stored text, which they keep alive whole
    t.ok(events.every((ev) => eventBytes(ev) >= encodeStored(ev).length), 'each event counts at least its stored text')
    const largest = `/pub/${Array.from({ length: 16 }, () => '"'.repeat(250)).join('/')}/${'"'.repeat(75)}`
    await owner.put(largest, 'largest')
    const last = await new LogPages(log).lease({}, log.head - 1)
    const [ev] = await last.page.events
    last.release()
    t.equal(ev?.path.length, MAX_PATH_BYTES, 'a path as long as a write can make, nearly all of it characters JSON escapes')
    t.ok(eventBytes(ev!) * PAGE <= READ_RESERVE, `a page of such events (${eventBytes(ev!) * PAGE} bytes) fits a read's reservation (${READ_RESERVE})`)
  })
})
