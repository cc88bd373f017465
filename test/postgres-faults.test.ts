import t from 'tap'
import { until } from './helpers/until.js'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import type { RawConfig } from '../src/config/env.js'
import type { ChildServer } from './helpers/child-server.js'
import { freshDatabase, requirePostgres } from './helpers/postgres.js'
import { instances } from './helpers/instances.js'
import { PgProxy } from './helpers/pg-proxy.js'
import { caughtUp, checkRelayLog, pinned, startTestRelay } from './helpers/relay.js'
import { newUser, startTestServer, type Teardown } from './helpers/server.js'
import { liveEvents, readSubscribe, type StreamEvent } from './helpers/sse.js'

/**
 * SPEC §9 under faults: two instances on one database, while one is killed, while one's
 * connection to PostgreSQL loses notifications, is cut, is cut right after a COMMIT, or reads
 * late; and a relay whose COMMIT's answer is lost. Nothing acknowledged is lost, nothing is
 * logged twice, the log has no gap, and every subscriber on every instance goes on without a
 * gap or a repeat.
 */

/** The poll of the head set far beyond any test: only NOTIFY (or a reconnect) carries news. */
const NO_POLL: RawConfig = { DATABASE_POLL_MS: '600000' }

/**
 * Two servers in this process on one fresh database: `a` connects directly, `b` through a
 * proxy that can lose its notifications and cut or slow its connections. A user signed up on
 * `a` has a client on each.
 */
async function pair(t: Teardown, settings: RawConfig = {}) {
  const url = await freshDatabase(t)
  const a = await startTestServer(t, { DATABASE_URL: url, ...settings })
  const proxy = await PgProxy.start(t, url)
  const b = await startTestServer(t, { DATABASE_URL: proxy.url, ...settings })
  const onA = new HomeserverClient(a.url, randomKeypair())
  await onA.signup()
  const onB = new HomeserverClient(b.url, onA.keypair, onA.session)
  return { a, b, proxy, onA, onB }
}

/** Waits until `seen` holds `n` events; the message says how far it got. */
function received(seen: StreamEvent[], n: number, what: string, ms = 30_000): Promise<void> {
  return until(() => seen.length >= n, `${n} events at ${what}`, ms, () => seen.map((e) => `${e.seq} ${e.path}`))
}

const lines = (events: readonly StreamEvent[]) => events.map((e) => `${e.seq} ${e.path}`)
/** `seq path` for paths written one after another from seq 1. */
const expected = (paths: readonly string[]) => paths.map((p, i) => `${i + 1} ${p}`)

if (await requirePostgres(t)) {
  t.test('kill -9 of one instance during writes: nothing acknowledged lost, no gap, the other instance unaffected', async (t) => {
    const [a, b] = (await instances(t, 2)) as [ChildServer, ChildServer]

    const live = await liveEvents(t, b.url)
    t.equal(live.status, 200)
    const seen = live.events

    const onA = new HomeserverClient(a.url, randomKeypair())
    await onA.signup()
    const onB = new HomeserverClient(b.url, randomKeypair())
    await onB.signup()
    const acked = new Map<string, string>()
    let stop = false
    const writer = (client: HomeserverClient, name: string) =>
      (async () => {
        for (let i = 0; !stop; i++) {
          const path = `/pub/k/${name}-${i}`
          const res = await client.request('PUT', path, `${name} ${i}`).catch(() => undefined)
          if (res === undefined || res.status !== 201) {
            if (client === onA) return // A is gone
            continue
          }
          acked.set(`${client.user}${path}`, `${name} ${i}`)
        }
      })()
    const writers = [writer(onA, 'a0'), writer(onA, 'a1'), writer(onB, 'b0'), writer(onB, 'b1')]
    try {
      await until(() => acked.size >= 150, '150 acknowledged writes', 60_000, () => acked.size)
      await a.kill()
      const before = acked.size
      await until(() => acked.size >= before + 50, `50 more acknowledged writes after ${before}`, 60_000, () => acked.size)
    } finally {
      // the writers stop also when a wait failed: none outlives the test
      stop = true
      await Promise.all(writers)
    }

    const log = await readSubscribe(`${b.url}/subscribe?lastSeq=0&live=false`)
    t.equal(log.status, 200)
    const seqs = log.events.map((e) => Number(e.seq))
    t.same(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'the log has no gap')
    const stored = new Set(log.events.map((e) => `${e.user}${e.path}`))
    t.same([...acked.keys()].filter((k) => !stored.has(k)), [], 'every acknowledged write has its event')
    for (const [key, body] of [...acked].slice(0, 40)) {
      const user = key.slice(0, 52)
      const res = await fetch(`${b.url}/storage/${key}`)
      t.equal(await res.text(), body, `${key.slice(52)} of ${user.slice(0, 6)}… is stored whole`)
    }
    // the subscriber on B saw everything up to the head, in order, once
    await received(seen, seqs.length, 'the live subscriber on the surviving instance')
    t.same(seen.map((e) => Number(e.seq)), seqs, 'the live subscriber on the surviving instance got every event once, in order')
  })

  t.test('with the poll off, NOTIFY alone carries each commit to the subscribers of another instance', async (t) => {
    const { b, onA } = await pair(t, NO_POLL)
    const live = await liveEvents(t, b.url)
    t.equal(live.status, 200)
    const paths = ['/pub/n/1', '/pub/n/2', '/pub/n/3']
    for (const p of paths) await onA.put(p, p)
    await received(live.events, 3, 'a subscriber of the other instance', 20_000)
    t.same(lines(live.events), expected(paths), 'in order, once')
  })

  t.test('notifications lost while the connection stays up: the poll delivers every event, in order, once', async (t) => {
    const { b, proxy, onA } = await pair(t)
    proxy.dropNotifications = true
    const live = await liveEvents(t, b.url)
    t.equal(live.status, 200)
    const paths = Array.from({ length: 20 }, (_, i) => `/pub/lost/${i}`)
    for (const p of paths) await onA.put(p, p)
    await received(live.events, paths.length, 'the instance whose notifications are lost')
    t.same(lines(live.events), expected(paths), 'no gap, no repeat')
    t.ok(proxy.notificationsDropped > 0, `${proxy.notificationsDropped} notifications were lost on the way`)
  })

  t.test('the LISTEN connection cut and refused while commits land elsewhere: after it reconnects, they arrive in order, once', async (t) => {
    const { b, proxy, onA } = await pair(t, NO_POLL)
    const live = await liveEvents(t, b.url)
    t.equal(live.status, 200)
    const paths = Array.from({ length: 9 }, (_, i) => `/pub/cut/${i}`)
    for (const p of paths.slice(0, 3)) await onA.put(p, p)
    await received(live.events, 3, 'the other instance, before the cut', 20_000)
    // every connection of b's cut, and new ones refused, while five commits land on a
    proxy.tcp.mode = 'refuse'
    for (const p of paths.slice(3, 8)) await onA.put(p, p)
    proxy.tcp.mode = 'pass'
    await received(live.events, 8, 'the other instance, after it reconnected (no commit since)')
    await onA.put(paths[8]!, paths[8]!)
    await received(live.events, 9, 'the other instance, listening again', 20_000)
    t.same(lines(live.events), expected(paths), 'no gap, no repeat')
  })

  t.test('a connection cut right after COMMIT: the PUT fails, its event is in the log once, a retry is a new event', async (t) => {
    const { a, b, proxy, onA, onB } = await pair(t)
    const onAStream = await liveEvents(t, a.url)
    const onBStream = await liveEvents(t, b.url)
    const paths: string[] = []
    for (let round = 0; round < 3; round++) {
      const mine = `/pub/commit/${round}`
      await onA.put(`/pub/other/${round}`, 'from a')
      proxy.cutAfterCommit()
      const cut = await onB.request('PUT', mine, 'first try')
      await cut.arrayBuffer()
      t.ok(cut.status >= 500, `the write whose COMMIT answer was lost failed (${cut.status}), not acknowledged`)
      t.equal(proxy.commitsCut, round + 1, 'its connection was cut right after COMMIT')
      const retry = await onB.request('PUT', mine, `retry ${round}`)
      t.equal(retry.status, 201, 'the retry is acknowledged')
      paths.push(`/pub/other/${round}`, mine, mine)
    }
    const log = await readSubscribe(`${b.url}/subscribe?lastSeq=0&live=false`)
    t.same(lines(log.events), expected(paths), 'each committed write once, the one cut after COMMIT included; no gap')
    for (let round = 0; round < 3; round++) {
      t.equal(new TextDecoder().decode(await onA.get(`/pub/commit/${round}`)), `retry ${round}`, 'the file holds the retry')
    }
    await received(onAStream.events, paths.length, 'the subscriber of the directly connected instance')
    await received(onBStream.events, paths.length, 'the subscriber of the instance whose connection was cut')
    t.same(lines(onAStream.events), expected(paths), 'its subscriber saw the same log')
    t.same(lines(onBStream.events), expected(paths), 'and so did the subscriber of the instance whose commit was cut')
  })

  t.test('a relay whose connection is cut right after COMMIT: every upstream event once, none lost', async (t) => {
    const upstream = await startTestServer(t)
    const writer = await newUser(upstream)
    for (let i = 0; i < 5; i++) await writer.put(`/pub/r/${i}`, `${i}`)
    const proxy = await PgProxy.start(t, await freshDatabase(t))
    const relay = await startTestRelay(t, [pinned(upstream)], { DATABASE_URL: proxy.url })
    await caughtUp(relay.url, [pinned(upstream)])
    // the next commit of the relay is the group of these events: committed, and its answer lost
    proxy.cutAfterCommit()
    for (let i = 5; i < 10; i++) await writer.put(`/pub/r/${i}`, `${i}`)
    await caughtUp(relay.url, [pinned(upstream)])
    t.equal(proxy.commitsCut, 1, 'a commit of the relay was cut right after COMMIT')
    await checkRelayLog(t, relay.url, [{ url: upstream.url, key: upstream.ctx.keypair.z32 }])
  })

  t.test('a write is acknowledged only once its instance announced it: a replay from just before it, opened at once, has it', async (t) => {
    // b hears nothing of a's commits, and what b reads after its own COMMIT comes late
    const { b, proxy, onA, onB } = await pair(t, NO_POLL)
    proxy.dropNotifications = true
    await onA.put('/pub/elsewhere', 'seq 1, unheard of on b')
    proxy.holdAfterCommit(1000)
    const res = await onB.request('PUT', '/pub/mine', 'seq 2')
    t.equal(res.status, 201)
    const replay = await readSubscribe(`${b.url}/subscribe?lastSeq=1&live=false`)
    t.equal(replay.status, 200, `a cursor at the write before it is no future cursor (${replay.body ?? ''})`)
    t.same(lines(replay.events), ['2 /pub/mine'], 'the acknowledged write is in the replay')
  })
}
