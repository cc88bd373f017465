import t from 'tap'
import { seqOfId } from 'hearth-homeserver-client/id'
import { PAGE } from '../src/feed/pages.js'
import { startTestServer, newUser } from './helpers/server.js'
import { writeMany } from './helpers/feed.js'
import { StalledReader } from './helpers/stalled-reader.js'
import { until } from './helpers/until.js'

// Many stalled readers resuming at the same moment, all from the start of a long log: each
// must get every event, in order, while the pages of the log that the replays hold, across all
// streams, never count more than their budget (test/feed-page-bytes.test.ts fills it).

const EVENTS = 10_000
const STREAMS = 100
/**
 * Each stream must be more than its socket can take unread: here the kernel holds about 4 MB
 * of a stream nobody reads (the sender's buffer grows to tcp_wmem's 4 MiB, the receiver's
 * stays at its first 128 KiB). Short paths made 2.3 MB, which a fast enough server wrote
 * whole into the kernel, ending every stream before it could be resumed. 300 bytes more of path
 * makes each frame about 850 bytes, and each stream 8.5 MB.
 */
const NAME = 'n'.repeat(150) + '/' + 'n'.repeat(149)

t.test(`${STREAMS} stalled replays resuming at once share bounded pages and each get every event`, async (t) => {
  const server = await startTestServer(t, { MAX_STREAMS_PER_IP: '1000000' })
  const owner = await newUser(server)
  await writeMany(owner, EVENTS, (i) => `/pub/r/${i}/${NAME}`, 32)
  const head = server.ctx.events.head
  t.equal(head, EVENTS)
  // many pages, so streams at different cursors read different pages at once
  t.ok(EVENTS / PAGE > 32)

  const seqs: number[][] = []
  const readers: StalledReader[] = []
  for (let i = 0; i < STREAMS; i++) {
    const got: number[] = []
    seqs.push(got)
    const reader = new StalledReader(server.url, '/subscribe?filter=*&lastSeq=0&live=false', (f) => {
      if (f.event === 'PUT') got.push(Number(seqOfId(f.id!)))
    })
    readers.push(reader)
    t.teardown(() => reader.close())
  }
  // every stream has started its replay into a socket that does not read, and filled it: the
  // server holds bytes it cannot write yet
  const blocked = () => [...server.ctx.feed.subscribers()].filter((s) => s.stream.buffered > 0).length
  await until(
    () => server.ctx.feed.size === STREAMS && blocked() === STREAMS,
    `${STREAMS} open streams, each with bytes its socket does not take`,
    60_000,
    () => ({ open: server.ctx.feed.size, blocked: blocked() }),
  )
  for (const reader of readers) reader.resume()

  let peak = 0
  const watch = setInterval(() => (peak = Math.max(peak, server.ctx.feed.stats().pages.bytes)), 5)
  t.teardown(() => clearInterval(watch))
  const done = () => readers.filter((r) => r.ended).length
  await until(() => done() === STREAMS, 'every replay to end', 240_000, () => ({ ended: done(), pages: server.ctx.feed.stats().pages }))
  clearInterval(watch)

  let whole = 0
  for (const got of seqs) if (got.length === EVENTS && got.every((seq, i) => seq === i + 1)) whole++
  t.equal(whole, STREAMS, 'every stream got events 1 to the head, once each, in order')
  t.equal(readers.filter((r) => r.status !== 200).length, 0)

  const pages = server.ctx.feed.stats().pages
  t.comment(JSON.stringify(pages))
  t.ok(pages.peakBytes <= pages.budget, `page bytes held at once peaked at ${pages.peakBytes} (budget ${pages.budget})`)
  t.ok(peak <= pages.budget, `and at ${peak} where sampled`)
  t.equal(pages.waiting, 0, 'no reader is left waiting')
  // one read per page per stream without sharing; streams at the same cursor share one
  t.ok(pages.reads < (STREAMS * EVENTS) / PAGE / 4, `${pages.reads} reads for ${STREAMS} streams of ${EVENTS / PAGE} pages`)
})
