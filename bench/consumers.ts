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
 *     at the backlog's start; every event is acknowledged, the workers (all in this process)
 *     sharing their ack requests, up to four at a time per worker, the acks that come meanwhile
 *     gathered into the next: events per second until the ack floor reaches the head.
 * The two sides run in pairs, one right after the other: a pair untimed, to warm up (the first
 * consumer run of a server was about a fifth slower than the ones after it, its code not yet
 * compiled), then seven timed pairs (the consumer side through a new consumer made at the same
 * start each time), the side that goes first taking turns: the second side of a pair runs on a
 * server holding the first one's garbage, and consumer runs on their own after a first one
 * were about a tenth faster than those right after a `/subscribe` run. The ratio is the median of the pairs' ratios, the rates the medians of
 * each side's: on this machine one run of the same code moved by a third from one run to the
 * next, in spells that slowed both sides alike, so a side is compared with the run of the
 * other beside it, not with the other's best. (This bench once counted each side's better of
 * two runs, all of one side before the other's.) One more consumer runs under the CPU
 * profiler, untimed: timing the profiled run (as this bench once did) cost the consumer side
 * about a third of its rate, which the control did not pay.
 * Also: the CPU time each side costs per event (medians over the timed pairs), the server
 * process's (on PostgreSQL, without the database's) and the client side's (this process: the
 * workers, or the follow()), which says what a rate alone does not on a machine whose speed
 * moves from run to run; ack requests sent, events per ack request, and the consumer's state at the end; and
 * the cost in writes of keeping its state, from the server's metrics: durable commits of the
 * consumer's state per event processed, and how many changes (claims of a step, ack requests,
 * releases) each commit grouped.
 * Then the same on PostgreSQL (a fresh database, no profiled run): `pg…` figures, with no goal of
 * their own; the goal is the LevelDB ratio's.
 */
export const description = 'Events processed per second through a durable consumer with explicit acks (4 workers) against the same events through /subscribe, in seven pairs of runs (which side goes first taking turns); ratio = the median of the pairs\' consumer ÷ subscribe, on LevelDB (pg…: the same on PostgreSQL).'
export const goals = { ratio: '>= 0.5', unprocessed: '== 0' }

const USERS = 500

/** The server's CPU profile while the consumer's workers run (bench/cpu-profile.ts). */
export let profiles: ProfileSummary[] = []
const WORKERS = 4
/** Timed pairs of runs (one of each side, one right after the other), after one pair that warms them up (untimed). */
const TIMED_PAIRS = 7
/** the ack route, as the server's request metrics name it */
const ACK_ROUTE = { method: 'POST', route: '/consumers/:id/ack' }

/** What one engine's run measured. */
interface Measured {
  events: number
  /** the medians over the timed pairs */
  subscribePerSec: number
  consumerPerSec: number
  /** the median of the pairs' ratios (consumer ÷ subscribe), and the lowest and the highest */
  ratio: number
  ratios: [number, number]
  /** of the first timed consumer run: ack requests sent, events processed, commits and the changes they grouped */
  ackRequests: number
  processed: number
  commits: number
  changes: number
  /** what the consumers left unprocessed at the end, over all runs */
  unprocessed: number
  /** CPU time per event, in µs, the medians over the timed pairs: the server process's and the client side's (this process), for each side */
  cpuUs: { subscribeServer: number; subscribeClient: number; consumerServer: number; consumerClient: number }
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

  const ratio = round(level.ratio)
  const pgRatio = round(pg.ratio)
  const { events, ackRequests, processed, commits, changes } = level
  console.log(`consumers: ${events} events of ${USERS} users`)
  console.log(`  /subscribe (one follow()):             ${Math.round(level.subscribePerSec)} events/s`)
  console.log(`  consumer, explicit acks, ${WORKERS} workers:   ${Math.round(level.consumerPerSec)} events/s, ratio ${ratio} (goal ≥ 0.5; pairs ${round(level.ratios[0])}–${round(level.ratios[1])})`)
  console.log(`  ${ackRequests} ack requests, ${round(processed / Math.max(1, ackRequests))} events each; ${processed - events} processed more than once`)
  console.log(`  ${commits} commits of the consumer's state, ${Math.round((commits / events) * 1000) / 1000} per event, ${round(changes / Math.max(1, commits))} changes each`)
  const cpu = level.cpuUs
  console.log(`  CPU per event: server ${round(cpu.consumerServer)} µs, workers ${round(cpu.consumerClient)} µs; /subscribe: server ${round(cpu.subscribeServer)} µs, follow() ${round(cpu.subscribeClient)} µs`)
  console.log(`  PostgreSQL: /subscribe ${Math.round(pg.subscribePerSec)} events/s, consumer ${Math.round(pg.consumerPerSec)} events/s, ratio ${pgRatio} (pairs ${round(pg.ratios[0])}–${round(pg.ratios[1])})`)
  return {
    events,
    users: USERS,
    workers: WORKERS,
    subscribeEventsPerSec: Math.round(level.subscribePerSec),
    consumerEventsPerSec: Math.round(level.consumerPerSec),
    ratio,
    ratioLowest: round(level.ratios[0]),
    ratioHighest: round(level.ratios[1]),
    ackRequests,
    eventsPerAckRequest: round(processed / Math.max(1, ackRequests)),
    commits,
    commitsPerEvent: Math.round((commits / events) * 1000) / 1000,
    changesPerCommit: round(changes / Math.max(1, commits)),
    redelivered: processed - events,
    unprocessed: level.unprocessed + pg.unprocessed,
    pgSubscribeEventsPerSec: Math.round(pg.subscribePerSec),
    pgConsumerEventsPerSec: Math.round(pg.consumerPerSec),
    serverCpuUsPerEvent: round(cpu.consumerServer),
    workersCpuUsPerEvent: round(cpu.consumerClient),
    subscribeServerCpuUsPerEvent: round(cpu.subscribeServer),
    subscribeClientCpuUsPerEvent: round(cpu.subscribeClient),
    pgRatio,
    pgServerCpuUsPerEvent: round(pg.cpuUs.consumerServer),
    pgSubscribeServerCpuUsPerEvent: round(pg.cpuUs.subscribeServer),
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
    const consumerIds = [...Array.from({ length: 1 + TIMED_PAIRS }, () => newConsumerId()), ...(profiler === undefined ? [] : [newConsumerId()])]
    for (const id of consumerIds) await consumers.create(id, { filters: ['*'], from: { after: String(start) }, ack: 'explicit', maxPending: 10_000 })
    let next = 0
    await Promise.all(users.map(async (u) => {
      while (next < backlog) await u.put(`/pub/bench/${next++}`, 'x')
    }))
    const head = await headOf(server.url)
    const events = head - start

    // the control: the same events through /subscribe, read by one follow() from the start
    const subscribe = async (): Promise<Run> => {
      const stop = new AbortController()
      const began = cpuNow(server)
      const follower = follow({ url: server.url, from: String(start), cursorStore: 'memory', signal: stop.signal })
      for await (const e of follower) if (BigInt(e.seq) >= BigInt(head)) break
      stop.abort()
      return runSince(began, server)
    }

    // the consumer: four workers sharing it, every event acked; the end is the state's: every
    // event acked and stored. It is asked for once the handlers have seen as many events as
    // there are, then every 2 ms until it says so (asking every 20 ms from the start, as this
    // bench did, ended a run 10 ms late on average)
    let first: Pick<Measured, 'commits' | 'changes' | 'ackRequests' | 'processed'> | undefined
    let unprocessed = 0
    const consume1 = async (consumerId: string, run: number): Promise<Run | undefined> => {
      const before = await Scrape.of(server.metricsUrl!)
      const started = cpuNow(server)
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
      let timed: Run | undefined
      if (run <= TIMED_PAIRS) {
        state = await done()
        timed = runSince(started, server)
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
      return timed
    }

    // a pair to warm up, then the timed pairs, each side right after the other, which side
    // goes first taking turns, then the profiled run
    const pairs: { subscribe: Run; consumer: Run }[] = []
    for (const [run, consumerId] of consumerIds.entries()) {
      let subscribed: Run | undefined
      let consumed: Run | undefined
      if (run % 2 === 1 && run <= TIMED_PAIRS) {
        consumed = await consume1(consumerId, run)
        subscribed = await subscribe()
      } else {
        subscribed = run <= TIMED_PAIRS ? await subscribe() : undefined
        consumed = await consume1(consumerId, run)
      }
      if (run > 0 && subscribed !== undefined && consumed !== undefined) pairs.push({ subscribe: subscribed, consumer: consumed })
    }
    const ratios = pairs.map((p) => p.subscribe.seconds / p.consumer.seconds)
    const perEventUs = (side: 'subscribe' | 'consumer', cpu: 'serverMs' | 'clientMs') => median(pairs.map((p) => (p[side][cpu] * 1000) / Math.max(1, events)))
    return {
      events, unprocessed, ...first!,
      subscribePerSec: median(pairs.map((p) => events / p.subscribe.seconds)), consumerPerSec: median(pairs.map((p) => events / p.consumer.seconds)),
      ratio: median(ratios), ratios: [Math.min(...ratios), Math.max(...ratios)],
      cpuUs: {
        subscribeServer: perEventUs('subscribe', 'serverMs'), subscribeClient: perEventUs('subscribe', 'clientMs'),
        consumerServer: perEventUs('consumer', 'serverMs'), consumerClient: perEventUs('consumer', 'clientMs'),
      },
    }
  } finally {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (main) console.log(await benchConsumers())

/** One timed run of a side: its seconds, and the CPU time the server process and this one (the client side) spent meanwhile. */
interface Run {
  seconds: number
  serverMs: number
  clientMs: number
}

/** Where a run starts: the clock, and both processes' CPU time so far. */
function cpuNow(server: ChildServer): { at: number; server: number; client: NodeJS.CpuUsage } {
  return { at: performance.now(), server: server.cpuMs(), client: process.cpuUsage() }
}

function runSince(began: ReturnType<typeof cpuNow>, server: ChildServer): Run {
  const client = process.cpuUsage(began.client)
  return { seconds: (performance.now() - began.at) / 1000, serverMs: server.cpuMs() - began.server, clientMs: (client.user + client.system) / 1000 }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
