import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { consume, Consumers, follow, HomeserverClient, newConsumerId } from 'hearth-homeserver-client'
import { ChildServer } from '../test/helpers/child-server.js'
import { headOf } from '../test/helpers/server.js'
import { Scrape } from '../test/helpers/prometheus.js'
import { freshDatabase } from '../test/helpers/postgres.js'
import { CpuProfiler } from './cpu-profile.js'
import type { ProfileSummary } from './report.js'
import { round } from './load.js'

/**
 * A durable consumer with explicit acks against `/subscribe`, over the same events of one
 * homeserver (a child process on LevelDB, logging at `info`, Hearth's default: a line per ack
 * request), side by side in one run:
 *   - control: one `follow()` reads the backlog through `/subscribe` from its start, its
 *     handler doing nothing: events per second;
 *   - consumer: four `consume()` workers (64 handlers each) share one explicit consumer made
 *     at the backlog's start; every event is acknowledged, up to four ack requests at a time
 *     per worker, the acks that come meanwhile gathered into the next: events per second until
 *     the ack floor reaches the head.
 * Each side first runs once untimed over the backlog, to warm up (the first consumer run of a
 * server was about a fifth slower than the ones after it, its code not yet compiled), then
 * twice more, timed (the consumer side through a new consumer made at the same start each
 * time), and counts its better run, as the replay benches do: a run lasts about a second, and
 * one run alone moved by a quarter between runs of the same code. One more consumer runs under
 * the CPU profiler, untimed: timing the profiled run (as this bench once did) cost the consumer
 * side about a third of its rate, which the control did not pay.
 * Also: ack requests sent, events per ack request, and the consumer's state at the end; and
 * the cost in writes of keeping its state, from the server's metrics: durable commits of the
 * consumer's state per event processed, and how many changes (claims of a step, ack requests,
 * releases) each commit grouped.
 * Then the same on PostgreSQL (a fresh database, no profiled run): `pg…` figures, with no goal of
 * their own; the goal is the LevelDB ratio's.
 */
export const description = 'Events processed per second through a durable consumer with explicit acks (4 workers) against the same events through /subscribe; ratio = consumer ÷ subscribe, on LevelDB (pg…: the same on PostgreSQL).'
export const goals = { ratio: '>= 0.5', unprocessed: '== 0' }

const USERS = 500

/** The server's CPU profile while the consumer's workers run (bench/cpu-profile.ts). */
export let profiles: ProfileSummary[] = []
const WORKERS = 4
/** Timed runs of each side, after one run that warms it up (untimed): the better one counts. */
const TIMED_RUNS = 2
/** the ack route, as the server's request metrics name it */
const ACK_ROUTE = { method: 'POST', route: '/consumers/:id/ack' }

/** What one engine's run measured. */
interface Measured {
  events: number
  subscribePerSec: number
  consumerPerSec: number
  /** of the first timed consumer run: ack requests sent, events processed, commits and the changes they grouped */
  ackRequests: number
  processed: number
  commits: number
  changes: number
  /** what the consumers left unprocessed at the end, over all runs */
  unprocessed: number
}

export async function benchConsumers(): Promise<Record<string, number | string>> {
  const quick = process.env.BENCH_QUICK === '1'
  const backlog = quick ? 4000 : 50_000
  const profiler = new CpuProfiler()
  const dropped: (() => unknown)[] = []
  let level: Measured
  let pg: Measured
  try {
    level = await measure(backlog, {}, profiler)
    // the same on PostgreSQL, without a profiled run
    pg = await measure(backlog, { DATABASE_URL: await freshDatabase({ teardown: (fn) => void dropped.push(fn) }) })
  } finally {
    profiler.close()
    for (const drop of dropped) await drop()
  }

  const ratio = round(level.consumerPerSec / level.subscribePerSec)
  const pgRatio = round(pg.consumerPerSec / pg.subscribePerSec)
  const { events, ackRequests, processed, commits, changes } = level
  console.log(`consumers: ${events} events of ${USERS} users`)
  console.log(`  /subscribe (one follow()):             ${Math.round(level.subscribePerSec)} events/s`)
  console.log(`  consumer, explicit acks, ${WORKERS} workers:   ${Math.round(level.consumerPerSec)} events/s, ratio ${ratio} (goal ≥ 0.5)`)
  console.log(`  ${ackRequests} ack requests, ${round(processed / Math.max(1, ackRequests))} events each; ${processed - events} processed more than once`)
  console.log(`  ${commits} commits of the consumer's state, ${Math.round((commits / events) * 1000) / 1000} per event, ${round(changes / Math.max(1, commits))} changes each`)
  console.log(`  PostgreSQL: /subscribe ${Math.round(pg.subscribePerSec)} events/s, consumer ${Math.round(pg.consumerPerSec)} events/s, ratio ${pgRatio}`)
  return {
    events,
    users: USERS,
    workers: WORKERS,
    subscribeEventsPerSec: Math.round(level.subscribePerSec),
    consumerEventsPerSec: Math.round(level.consumerPerSec),
    ratio,
    ackRequests,
    eventsPerAckRequest: round(processed / Math.max(1, ackRequests)),
    commits,
    commitsPerEvent: Math.round((commits / events) * 1000) / 1000,
    changesPerCommit: round(changes / Math.max(1, commits)),
    redelivered: processed - events,
    unprocessed: level.unprocessed + pg.unprocessed,
    pgSubscribeEventsPerSec: Math.round(pg.subscribePerSec),
    pgConsumerEventsPerSec: Math.round(pg.consumerPerSec),
    pgRatio,
    pgCommitsPerEvent: Math.round((pg.commits / pg.events) * 1000) / 1000,
  }
}

/**
 * One homeserver (a child process; on PostgreSQL with `DATABASE_URL` in `env`), `backlog`
 * events of USERS users, then each side twice; with `profiler`, a third consumer run under it.
 */
async function measure(backlog: number, env: Record<string, string>, profiler?: CpuProfiler): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-bench-consumers-'))
  const server = await ChildServer.start({ dataDir: dir, env: { SIGNUP_RATE_LIMIT: '1000000', METRICS_PORT: '0', ...env, ...profiler?.env } })
  try {
    const users = await Promise.all(Array.from({ length: USERS }, async () => {
      const c = new HomeserverClient(server.url, randomKeypair())
      await c.signup()
      return c
    }))
    const owner = users[0]!
    const start = await headOf(server.url)
    const consumers = new Consumers(owner)
    // a run to warm up, two timed runs, and one under the profiler (which slows what it watches)
    const consumerIds = [newConsumerId(), newConsumerId(), newConsumerId(), ...(profiler === undefined ? [] : [newConsumerId()])]
    for (const id of consumerIds) await consumers.create(id, { filters: ['*'], from: { after: String(start) }, ack: 'explicit', maxPending: 10_000 })
    let next = 0
    await Promise.all(users.map(async (u) => {
      while (next < backlog) await u.put(`/pub/bench/${next++}`, 'x')
    }))
    const head = await headOf(server.url)
    const events = head - start

    // control: the same events through /subscribe, a run to warm up, then two timed
    let subscribeSeconds = Infinity
    for (let run = 0; run <= TIMED_RUNS; run++) {
      const stop = new AbortController()
      const began = performance.now()
      const follower = follow({ url: server.url, from: String(start), cursorStore: 'memory', signal: stop.signal })
      for await (const e of follower) if (BigInt(e.seq) >= BigInt(head)) break
      if (run > 0) subscribeSeconds = Math.min(subscribeSeconds, (performance.now() - began) / 1000)
      stop.abort()
    }

    // the consumer: four workers sharing it, every event acked
    let consumerSeconds = Infinity
    let first: Pick<Measured, 'commits' | 'changes' | 'ackRequests' | 'processed'> | undefined
    let unprocessed = 0
    for (const [run, consumerId] of consumerIds.entries()) {
      const before = await Scrape.of(server.metricsUrl!)
      const started = performance.now()
      // the end is the state's: every event acked and stored. It is asked for once the
      // handlers have seen as many events as there are, then every 2 ms until it says so
      // (asking every 20 ms from the start, as this bench did, ended a run 10 ms late on average)
      let seen = 0
      let allSeen!: () => void
      const handled = new Promise<void>((resolve) => (allSeen = resolve))
      const handler = () => void (++seen === events && allSeen())
      if (events === 0) allSeen()
      const workers = Array.from({ length: WORKERS }, () => consume({ owner, consumer: consumerId, handler, concurrency: 64 }))
      const done = async () => {
        await handled
        let state = await consumers.get(consumerId)
        while (state.lag > 0 || state.pending > 0) {
          await new Promise((r) => setTimeout(r, 2))
          state = await consumers.get(consumerId)
        }
        return state
      }
      let state
      if (run <= TIMED_RUNS) {
        state = await done()
        if (run > 0) consumerSeconds = Math.min(consumerSeconds, (performance.now() - started) / 1000)
      } else {
        const profiled = await profiler!.window(server.pid!, `${WORKERS} workers taking ${events} events`, done)
        profiles = [profiled.profile]
        state = profiled.result
      }
      unprocessed += state.lag + state.pending
      const after = await Scrape.of(server.metricsUrl!)
      await Promise.all(workers.map((w) => w.close()))
      if (run === 1) first = {
        commits: after.value('hearth_consumer_commits_total') - before.value('hearth_consumer_commits_total'),
        changes: after.value('hearth_consumer_changes_total') - before.value('hearth_consumer_changes_total'),
        // as the server counted them: answered ack requests, whatever their status
        ackRequests: after.sum('hearth_http_request_duration_seconds_count', ACK_ROUTE) - before.sum('hearth_http_request_duration_seconds_count', ACK_ROUTE),
        processed: workers.reduce((n, w) => n + w.processed, 0),
      }
    }
    return { events, subscribePerSec: events / subscribeSeconds, consumerPerSec: events / consumerSeconds, unprocessed, ...first! }
  } finally {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (main) console.log(await benchConsumers())
