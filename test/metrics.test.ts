import t from 'tap'
import { fileCost } from '../src/events/writer.js'
import { HIGH_WATER } from '../src/feed/sse.js'
import type { Subscriber } from '../src/feed/subscriber.js'
import { PHASES } from '../src/feed/observer.js'
import { PROTOCOLS } from '../src/feed/wire.js'
import { startTestServer, newUser } from './helpers/server.js'
import { RawStream, SocketStream, writeMany } from './helpers/feed.js'
import { Scrape, scrapeUntil } from './helpers/prometheus.js'

// Every number is driven by what the test does: each step writes, subscribes or stalls, and
// the next scrape (over HTTP, on the metrics port) must have moved by exactly that much.

t.test('each metric moves by exactly what the server did', async (t) => {
  // no keepalive within the test, so that every write to a stream is one the test caused
  const server = await startTestServer(t, { METRICS_PORT: '0', TESTNET: '1', PKARR_RELAY_PORT: '0', KEEPALIVE_MS: '3600000' })
  const url = server.metricsUrl!
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)

  const s0 = await scrapeUntil(url, (s) => s.value('hearth_pkarr_publishes_total', { result: 'ok' }) >= 1, 'the first pkarr publish')
  t.equal(s0.value('hearth_pkarr_publishes_total', { result: 'ok' }), 1, 'one publish to the testnet relay')
  t.equal(s0.value('hearth_pkarr_publishes_total', { result: 'failed' }), 0)
  t.ok(s0.value('hearth_pkarr_last_published_timestamp_seconds') > Date.now() / 1000 - 600, 'and when it was')
  t.equal(s0.value('hearth_event_log_head'), 0)
  t.equal(s0.value('hearth_event_log_floor'), 1)
  t.equal(s0.value('hearth_replay_pages_held'), 0, 'no replay, no page')
  t.equal(s0.value('hearth_replay_page_bytes'), 0)
  t.equal(s0.value('hearth_users'), 0)
  t.equal(s0.value('hearth_storage_used_bytes'), 0)
  // every stream kind wire.ts lists has its series from the start, at zero
  const series = (s: Scrape, name: string, labels: Record<string, string>) =>
    s.samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v)).map((x) => x.value)
  for (const protocol of PROTOCOLS) {
    for (const phase of PHASES) t.same(series(s0, 'hearth_streams', { protocol, phase }), [0], `hearth_streams ${protocol} ${phase}`)
    for (const source of ['replay', 'live']) t.same(series(s0, 'hearth_events_delivered_total', { protocol, source }), [0], `delivered ${protocol} ${source}`)
    t.same(series(s0, 'hearth_stream_catch_ups_total', { protocol }), [0], `catch-ups ${protocol}`)
    t.same(series(s0, 'hearth_feed_writes_total', { protocol }), [0], `no ${protocol} write yet`)
  }
  t.ok(s0.types.has('hearth_process_cpu_user_seconds_total') && s0.types.has('hearth_nodejs_eventloop_lag_seconds'), "the process's own metrics")

  // Writes: one user, three PUTs (5 + 7 + 11 bytes), one DELETE (of the 7), one at a time.
  const owner = await newUser(server)
  await owner.put('/pub/m/a.txt', 'aaaaa')
  await owner.put('/pub/m/b.txt', 'bbbbbbb')
  await owner.put('/pub/m/c.txt', 'ccccccccccc')
  await owner.delete('/pub/m/b.txt')
  const STORED = fileCost('/pub/m/a.txt', 5) + fileCost('/pub/m/c.txt', 11)
  const s1 = await Scrape.of(url)
  t.equal(s1.value('hearth_users'), 1, 'users')
  t.equal(s1.value('hearth_storage_used_bytes'), STORED, 'bytes counted against the quota, as the writer counts them')
  t.equal(s1.value('hearth_event_log_head'), 4, 'head')
  t.equal(s1.value('hearth_events_appended_total', { type: 'PUT' }), 3, 'PUTs appended')
  t.equal(s1.value('hearth_events_appended_total', { type: 'DEL' }), 1, 'DELs appended')
  t.equal(s1.value('hearth_commit_group_size_count'), 4, 'one commit group per sequential write')
  t.equal(s1.value('hearth_commit_group_size_sum'), 4, 'holding one event each')
  t.equal(s1.value('hearth_commit_group_size_bucket', { le: '1' }), 4)
  t.equal(s1.value('hearth_commit_duration_seconds_count'), 4, 'a duration per commit')
  t.ok(s1.value('hearth_commit_duration_seconds_sum') > 0)
  const requests = (method: string, route: string, status: string, s = s1) =>
    s.value('hearth_http_request_duration_seconds_count', { method, route, status_code: status })
  t.equal(requests('PUT', '/pub/*', '201'), 3, 'request durations by route pattern and status')
  t.equal(requests('DELETE', '/pub/*', '204'), 1)
  t.equal(requests('POST', '/signup', '200'), 1)
  await fetch(`${server.url}/no/such/route`).then((r) => r.arrayBuffer())
  await fetch(`${server.url}/pub/m/b.txt`, { headers: { 'pubky-host': owner.user } }).then((r) => r.arrayBuffer())
  const s1b = await Scrape.of(url)
  t.equal(requests('GET', 'unmatched', '404', s1b), 1, 'an unknown route counts under one label')
  t.equal(requests('GET', '/pub/*', '404', s1b), 1, 'a missing file counts under its route')

  // Replays: both protocols, ended once caught up.
  const replay = await RawStream.open(`${server.url}/subscribe/${owner.user}/*?lastSeq=0&live=false`)
  t.equal((await replay.all()).filter((f) => f.event).length, 4)
  const upstream = await RawStream.open(`${server.url}/events-stream?user=${owner.user}`)
  t.equal((await upstream.all()).filter((f) => f.event).length, 4)
  const s2 = await scrapeUntil(url, (s) => s.sum('hearth_streams') === 0, 'the replays to close')
  t.equal(s2.value('hearth_events_delivered_total', { protocol: 'subscribe', source: 'replay' }), 4, 'replayed over /subscribe')
  t.equal(s2.value('hearth_events_delivered_total', { protocol: 'events-stream', source: 'replay' }), 4, 'replayed over /events-stream')
  t.equal(s2.value('hearth_events_delivered_total', { protocol: 'subscribe', source: 'live' }), 0)
  t.equal(requests('GET', '/subscribe/*', '200', s2), 0, 'streams stay out of the request durations')
  t.equal(s2.value('hearth_replay_pages_held'), 1, "one page of the user's events, read once and kept for the next reader")
  t.ok(s2.value('hearth_replay_page_bytes') > 0, 'and counted against the budget')

  // A live subscriber gets two events.
  const live = await RawStream.open(`${server.url}/subscribe/${owner.user}/*`)
  t.teardown(() => live.close())
  const liveAt = await scrapeUntil(url, (s) => s.value('hearth_streams', { protocol: 'subscribe', phase: 'live' }) === 1, 'one live stream')
  t.ok(liveAt.value('hearth_feed_writes_total', { protocol: 'subscribe' }) >= 2, 'the replay and the live stream each wrote their opening')
  t.ok(liveAt.value('hearth_feed_writes_total', { protocol: 'events-stream' }) >= 1, 'the /events-stream replay wrote')
  await owner.put('/pub/m/d.txt', 'd')
  await live.until((frames) => frames.filter((f) => f.event).length === 1)
  await owner.put('/pub/m/e.txt', 'e')
  await live.until((frames) => frames.filter((f) => f.event).length === 2)
  const s3 = await Scrape.of(url)
  t.equal(s3.value('hearth_events_delivered_total', { protocol: 'subscribe', source: 'live' }), 2, 'pushed live')
  const liveWrites = s3.value('hearth_feed_writes_total', { protocol: 'subscribe' }) - liveAt.value('hearth_feed_writes_total', { protocol: 'subscribe' })
  t.equal(liveWrites, 2, 'one write for each event, pushed in commits of their own')
  // Concurrent writes share commit groups: a group's frames for one stream leave in one write.
  await writeMany(owner, 24, (i) => `/pub/m/many-${i}.txt`, 8)
  await live.until((frames) => frames.filter((f) => f.event).length === 2 + 24)
  const s3b = await Scrape.of(url)
  const groups = s3b.value('hearth_commit_group_size_count') - s3.value('hearth_commit_group_size_count')
  const groupWrites = s3b.value('hearth_feed_writes_total', { protocol: 'subscribe' }) - s3.value('hearth_feed_writes_total', { protocol: 'subscribe' })
  t.equal(groupWrites, groups, `one write per commit group (${groups} groups for 24 events)`)
  t.equal(s3.value('hearth_stream_catch_ups_total', { protocol: 'subscribe' }), 0)

  // A reader that stops reading: written to until the kernel's buffers are full and the
  // server holds bytes for it, which takes it off the live path.
  let stalledGot = 0
  const stalled = await SocketStream.open(server.url, `/subscribe/${owner.user}/*`, (f) => void (f.event && stalledGot++))
  t.teardown(() => stalled.close())
  stalled.socket.pause()
  await scrapeUntil(url, (s) => s.value('hearth_streams', { protocol: 'subscribe', phase: 'live' }) === 2, 'two live streams')
  const [liveSub, stalledSub] = [...server.ctx.feed.subscribers()] as [Subscriber, Subscriber]
  const before = await Scrape.of(url)
  // paths of ~3 KB make frames of ~6 KB, so a few thousand overflow the kernel's buffers
  const long = Array.from({ length: 12 }, () => 'x'.repeat(250)).join('/')
  let written = 0
  const deadline = Date.now() + 120_000
  while (stalledSub.phase !== 'catching_up' || stalledSub.stream.buffered <= HIGH_WATER) {
    if (Date.now() > deadline) throw new Error(`the stalled reader never backed up after ${written} events`)
    await writeMany(owner, 100, (i) => `/pub/big/${written + i}-${long}`, 16)
    written += 100
  }
  await live.until((frames) => frames.filter((f) => f.event).length === 2 + 24 + written, 120_000)
  const s4 = await Scrape.of(url)
  t.ok(stalledSub.catchUps >= 1, 'the stalled reader fell behind')
  // Both may have fallen behind more than once (kernel buffers fill in steps, and the reading
  // one shares this process with the server): the counter must match the subscribers' own.
  const catchUps = stalledSub.catchUps + liveSub.catchUps
  t.equal(s4.value('hearth_stream_catch_ups_total', { protocol: 'subscribe' }), catchUps, 'every fall from live counted')
  t.equal(s4.value('hearth_streams', { protocol: 'subscribe', phase: 'catching_up' }), 1, 'it is catching up')
  t.equal(s4.value('hearth_streams', { protocol: 'subscribe', phase: 'live' }), 1, 'the reading one stays live')
  const unsent = s4.value('hearth_stream_unsent_bytes')
  t.ok(unsent > HIGH_WATER, `the unsent bytes it holds (${unsent}) passed the high-water mark`)
  t.equal(unsent, stalledSub.stream.buffered, 'and are exactly what its socket has not taken')
  t.equal(s4.value('hearth_events_appended_total', { type: 'PUT' }) - before.value('hearth_events_appended_total', { type: 'PUT' }), written)

  stalled.socket.resume()
  await stalled.until(() => stalledGot === written, 120_000)
  const s5 = await scrapeUntil(url, (s) => s.value('hearth_streams', { protocol: 'subscribe', phase: 'live' }) === 2, 'the stalled reader to turn live again')
  const delivered = (s: Scrape, source: string) => s.value('hearth_events_delivered_total', { protocol: 'subscribe', source })
  const moved = delivered(s5, 'live') + delivered(s5, 'replay') - delivered(before, 'live') - delivered(before, 'replay')
  t.equal(moved, 2 * written, 'every event counted once per stream that got it')
  t.ok(delivered(s5, 'replay') > delivered(before, 'replay'), 'the stalled reader caught up from the log')
  t.equal(s5.value('hearth_stream_unsent_bytes'), 0, 'nothing left unsent')
  t.equal(s5.value('hearth_stream_catch_ups_total', { protocol: 'subscribe' }), stalledSub.catchUps + liveSub.catchUps)

  live.close()
  stalled.close()
  await scrapeUntil(url, (s) => s.sum('hearth_streams') === 0, 'every stream to close')

  // Names and labels: Prometheus conventions, nothing unbounded.
  const last = await Scrape.of(url)
  for (const [name, type] of last.types) {
    t.ok(name.startsWith('hearth_'), `${name} has the prefix`)
    if (type === 'counter') t.ok(name.endsWith('_total'), `${name} is a _total counter`)
  }
  for (const s of last.samples) {
    t.ok(last.family(s.name), `${s.name} belongs to a declared family`)
    for (const v of Object.values(s.labels)) {
      if (v.includes(owner.user) || v.includes('.txt') || v.includes('xxx')) t.fail(`${s.name} carries ${v} in a label`)
    }
  }
})

t.test('no metrics listener unless METRICS_PORT is set; it serves only /metrics', async (t) => {
  const plain = await startTestServer(t)
  t.equal(plain.metricsUrl, undefined)
  t.equal((await fetch(`${plain.url}/metrics`)).status, 404, 'the API port does not serve metrics')

  const server = await startTestServer(t, { METRICS_PORT: '0' })
  const base = server.metricsUrl!.replace(/\/metrics$/, '')
  const res = await fetch(`${base}/metrics`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  await res.arrayBuffer()
  const other = await fetch(`${base}/info`)
  t.equal(other.status, 404)
  await other.arrayBuffer()
})
