import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { SubscriptionTables } from '../src/subscriptions/tables.js'
import { ChildServer } from '../test/helpers/child-server.js'
import { matchWorkload, perEventNs } from './match.js'
import { load, signedUp } from './put.js'
import { buildLog, rawIteration, replay } from './replay.js'
import { countersReach, openCounters, type FrameCounter } from './frame-counter.js'
import { SteadyWriter } from './steady-writer.js'

/**
 * Scaling curves: how four costs grow with the thing they should not grow with (much).
 *
 *   1. `putPerSec@<connections>`: durable 1 KiB PUTs to `hearth serve` (a child process) from 1
 *      to 200 keep-alive connections, one user each, for a fixed window per point.
 *   2. `replayUsPerEvent@<events>` and `replayCpuUsPerEvent@<events>`: one `/subscribe` client
 *      reads the whole log (`lastSeq=0&live=false`), 10k to 10M events: wall time and the
 *      server's CPU time per event, which must stay flat as the log grows. The log is written
 *      straight into the store (bench/replay.ts's `buildLog`) and extended from one size to
 *      the next; the server restarts on it for each size. `rawRatio@<events>`: the replay's
 *      rate ÷ a raw LevelDB iteration's of the same log, which must stay ≥ 0.6 at every size.
 *   3. `deliveryCpuUs@<subscribers>`: 10 to 10,000 live `/subscribe?filter=*` streams on raw
 *      sockets that only count their frames, while one writer PUTs at a steady rate: the
 *      server's CPU time ÷ events delivered. The writes' own cost is in it, spread over fewer
 *      deliveries at 10 subscribers; `deliveryNetCpuUs` takes out what the same PUTs cost
 *      with nobody listening (a lone PUT is a commit of its own, milliseconds of CPU), given
 *      where the PUTs are less than half of the time. The rate falls as subscribers grow, so
 *      the points from 1,000 on deliver about the same number of events per second.
 *   4. `matchNs@<filters>`: matching one event against 10 to 1,000,000 registered filters, in
 *      process, with bench/match.ts's events and filters (the table grows; the events match
 *      the same ten filters at every size).
 *
 * `BENCH_QUICK=1` shortens every window and stops the replay at 100k events.
 */
export let description =
  'Scaling curves: durable PUTs/s vs connections, replay µs per event vs log size, server CPU per delivered event vs live subscribers, match ns per event vs filters.'
export const goals = { putErrors: '== 0', replayMissing: '== 0', deliveryMissing: '== 0', 'rawRatio@10000': '>= 0.6', 'rawRatio@100000': '>= 0.6', 'rawRatio@1000000': '>= 0.6' }
export const charts = [
  { title: 'Durable PUT throughput vs connections (1 KiB)', x: 'concurrent connections', y: 'PUTs/s', series: 'putPerSec' },
  { title: 'Replay cost per event vs log size', x: 'events in the log', y: 'µs per event (wall, server CPU)', series: /^replay/ },
  { title: 'Delivery cost vs live subscribers', x: 'subscribers', y: 'server CPU µs per delivered event', series: 'delivery', logY: true },
  { title: 'Match cost vs registered filters', x: 'filters', y: 'ns per event', series: 'matchNs' },
]

const CONNECTIONS = [1, 10, 50, 100, 200]
const LOG_SIZES = [10_000, 100_000, 1_000_000, 10_000_000]
const SUBSCRIBERS = [10, 100, 1_000, 10_000]
const FILTERS = [10, 1_000, 100_000, 1_000_000]
/** a log is built and replayed only when the smaller ones say it will take less, in seconds */
const LOG_BUDGET_S = 240

type Figures = Record<string, number | string>

export async function benchCurves(): Promise<Figures> {
  const quick = process.env.BENCH_QUICK === '1'
  const figures: Figures = {}
  for (const [name, curve] of [['put', putCurve], ['replay', replayCurve], ['delivery', deliveryCurve], ['match', matchCurve]] as const) {
    const started = performance.now()
    Object.assign(figures, await curve(quick))
    console.log(`curves: the ${name} curve took ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }
  return figures
}

/** 1. Durable PUTs/s at each number of connections, one server, a warm-up first. */
async function putCurve(quick: boolean): Promise<Figures> {
  const windowMs = quick ? 1000 : 3000
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-curves-put-'))
  const server = await ChildServer.start({ dataDir })
  try {
    const users = await Promise.all(Array.from({ length: Math.max(...CONNECTIONS) }, () => signedUp(server.url)))
    const figures: Figures = {}
    let errors = 0
    for (const connections of CONNECTIONS) {
      const agent = new Agent({ keepAlive: true, maxSockets: connections })
      const mine = users.slice(0, connections)
      // opens every connection and lets the server settle at this concurrency
      await load(agent, server.url, 'pub', mine, quick ? 300 : 1000)
      const l = await load(agent, server.url, 'pub', mine, windowMs)
      agent.destroy()
      errors += l.errors
      figures[`putPerSec@${connections}`] = Math.round(l.perSec)
      console.log(`curves: ${String(connections).padStart(3)} connections: ${Math.round(l.perSec)} durable PUTs/s (p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms)`)
    }
    figures.putErrors = errors
    return figures
  } finally {
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** 2. Replay of the whole log at each size; the log grows from one size to the next. */
async function replayCurve(quick: boolean): Promise<Figures> {
  const sizes = quick ? LOG_SIZES.slice(0, 2) : LOG_SIZES
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-curves-replay-'))
  const figures: Figures = {}
  let missing = 0
  let built = 0
  let buildSPerEvent = 0
  let replaySPerEvent = 0
  try {
    for (const size of sizes) {
      if (built > 0) {
        // linear in the events, from the last size's rates: LevelDB only gets slower as it grows
        const projected = (size - built) * buildSPerEvent + size * replaySPerEvent
        if (projected > LOG_BUDGET_S) {
          const why = `not run: building and replaying it was projected to take ${Math.round(projected)} s here, over ${LOG_BUDGET_S} s`
          figures[`replay${size >= 1_000_000 ? `${size / 1_000_000}M` : `${size / 1000}k`}`] = why
          description += ` The replay stops at ${built.toLocaleString('en')} events: ${size.toLocaleString('en')} was ${why}.`
          console.log(`curves: replay of ${size.toLocaleString('en')} events ${why}`)
          break
        }
      }
      const buildS = await buildLog(dataDir, size, built + 1)
      buildSPerEvent = buildS / (size - built)
      built = size
      // the reference: a raw LevelDB iteration of the same log, as many times as the replay runs
      const runs = Math.max(1, Math.round(200_000 / size))
      let rawMs = 0
      for (let i = 0; i < runs; i++) rawMs += await rawIteration(dataDir, size)
      const server = await ChildServer.start({ dataDir, startTimeoutMs: 300_000 })
      try {
        // the server's code paths compiled before anything is measured: the log's last 10,000
        await replay(server.url, Math.max(0, size - 10_000))
        // small logs are read several times, so the CPU clock's 10 ms ticks stay small beside them
        let ms = 0
        let cpuMs = 0
        for (let i = 0; i < runs; i++) {
          const cpu = server.cpuMs()
          const run = await replay(server.url)
          cpuMs += server.cpuMs() - cpu
          ms += run.ms
          missing += size - run.events
        }
        replaySPerEvent = ms / 1000 / (size * runs)
        figures[`replayUsPerEvent@${size}`] = round((ms * 1000) / (size * runs))
        figures[`replayCpuUsPerEvent@${size}`] = round((cpuMs * 1000) / (size * runs))
        figures[`rawRatio@${size}`] = round(rawMs / ms)
        console.log(
          `curves: replay of ${size.toLocaleString('en')} events (built in ${buildS.toFixed(1)} s): ` +
            `${figures[`replayUsPerEvent@${size}`]} µs/event wall, ${figures[`replayCpuUsPerEvent@${size}`]} µs/event server CPU (${runs} run${runs > 1 ? 's' : ''}), ` +
            `${figures[`rawRatio@${size}`]} of a raw LevelDB iteration's rate`,
        )
      } finally {
        await server.stop()
      }
    }
    figures.replayMissing = missing
    return figures
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** 3. Server CPU per delivered event with N live subscribers that each take every event. */
async function deliveryCurve(quick: boolean): Promise<Figures> {
  const seconds = quick ? 2 : 5
  // deliveries per second aimed at, and the PUT rate it is capped at with few subscribers: one
  // writer, one PUT at a time, each a commit of its own, keeps up with 100 a second
  const deliveriesPerSec = 40_000
  const maxRate = 100
  const figures: Figures = {}
  const fds = openFilesLimit()
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-curves-delivery-'))
  const server = await ChildServer.start({ dataDir, env: { MAX_STREAMS_PER_IP: '1000000' } })
  let missing = 0
  try {
    const writer = new HomeserverClient(server.url, randomKeypair())
    await writer.signup()
    const steady = new SteadyWriter(writer, '/pub/curves')
    const write = async (rate: number): Promise<number> => (await steady.write(rate, seconds)).length
    await write(maxRate / seconds) // 100 PUTs to warm the writer's connection, the server's write path
    const idle = server.cpuMs()
    const baseWrites = await write(maxRate)
    const putCpuUs = ((server.cpuMs() - idle) * 1000) / baseWrites
    figures.putCpuUsAlone = round(putCpuUs)
    console.log(`curves: a PUT costs the server ${round(putCpuUs)} µs of CPU with nobody subscribed`)

    for (const n of SUBSCRIBERS) {
      // this process holds one socket per subscriber and the server one more: both share the limit
      if (fds !== undefined && n + 1000 > fds) {
        const why = `not run: ${n.toLocaleString('en')} streams need more than the ${fds} open files allowed (ulimit -n)`
        figures[`delivery${n}`] = why
        console.log(`curves: delivery to ${n} subscribers ${why}`)
        continue
      }
      let subscribers: FrameCounter[] = []
      try {
        subscribers = await openCounters(server.url, '/subscribe?filter=*', n)
        const rate = Math.min(maxRate, deliveriesPerSec / n)
        const cpu = server.cpuMs()
        const writes = await write(rate)
        const expected = writes * n
        const got = await countersReach(subscribers, expected)
        const cpuMs = server.cpuMs() - cpu
        missing += expected - got
        const writesUs = writes * putCpuUs
        figures[`deliveryCpuUs@${n}`] = round((cpuMs * 1000) / got)
        // where the PUTs are most of the time, what is left is within their noise: no point
        if (writesUs < cpuMs * 500) figures[`deliveryNetCpuUs@${n}`] = round((cpuMs * 1000 - writesUs) / got)
        console.log(
          `curves: ${String(n).padStart(5)} subscribers, ${writes} PUTs at ${round(rate)}/s: ${got.toLocaleString('en')} of ${expected.toLocaleString('en')} delivered, ` +
            `${figures[`deliveryCpuUs@${n}`]} µs server CPU each (${figures[`deliveryNetCpuUs@${n}`] ?? '-'} µs without the PUTs' own cost; ` +
            `they were ${Math.round(writesUs / cpuMs / 10)}% of it)`,
        )
      } finally {
        for (const s of subscribers) s.close()
      }
    }
    figures.deliveryMissing = missing
    return figures
  } finally {
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** 4. ns per event as the table grows to each size; best of several passes over the events. */
async function matchCurve(quick: boolean): Promise<Figures> {
  const { others, followed, events, extra } = matchWorkload()
  const tables = new SubscriptionTables<number>()
  let added = 0
  const add = (filters: ReturnType<typeof extra>) => {
    for (const f of filters) tables.add(added++, [f])
  }
  add(followed)
  for (let run = 0; run < 3; run++) perEventNs(tables, events) // compiled before the first size is timed
  const figures: Figures = {}
  for (const n of FILTERS) {
    // in slices, so a million filters are never all held in one array besides the tables
    while (added < n) add(extra(others, Math.min(100_000, n - added)))
    let best = Infinity
    for (let run = 0; run < (quick ? 5 : 9); run++) best = Math.min(best, perEventNs(tables, events))
    figures[`matchNs@${n}`] = round(best)
    console.log(`curves: match against ${n.toLocaleString('en')} filters: ${round(best)} ns/event`)
  }
  return figures
}

/** The soft limit on open files of this process (its children inherit it), from /proc. */
function openFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return m === null ? undefined : Number(m[1])
  } catch {
    return undefined
  }
}

const round = (n: number) => Math.round(n * 100) / 100

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(await benchCurves())
}
