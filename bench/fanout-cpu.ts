import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { CLI_NODE_FLAGS } from '../test/helpers/cli.js'
import { ChildServer } from '../test/helpers/child-server.js'
import { Scrape } from '../test/helpers/prometheus.js'
import { cpuTicks } from './fanout.js'
import { countersReach, openCounters, type FrameCounter } from './frame-counter.js'
import { SteadyWriter } from './steady-writer.js'

/**
 * Fan-out CPU against a control, side by side in one run. `hearth serve` (a child process)
 * with 1,000 live `/subscribe?filter=*` streams on raw sockets that only count frames, while
 * one writer PUTs RATE a second for a window: the server's CPU time in that window, less what
 * the same PUTs cost it with nobody listening (measured just before, same server), is the
 * fan-out's; ÷ events delivered = `feedCpuUsPerDelivery`. `deliveriesPerWrite` reads the
 * server's own count of socket writes (`hearth_feed_writes_total`).
 *
 * The control (bench/sse-control.ts) is a bare node:http server in a child process holding
 * 1,000 SSE responses to the same kind of sockets: it writes a real `/subscribe` frame taken
 * from the server, as many frames per socket as the server delivered, in as many writes as
 * the server made, at the same pace. Its CPU time ÷ frames = `controlCpuUsPerDelivery`, and
 * `fanoutCpuRatio` is feed ÷ control: what the feed costs beyond the writes themselves.
 *
 * Latency is write→delivery: from sending a PUT to the read that brings its frame, over every
 * stream. The load generator shares the machine's cores with the server.
 */
export const description =
  "Fan-out CPU: server CPU per live delivery to 1,000 `/subscribe?filter=*` streams, less the PUTs' own cost, against a bare node:http server writing the same frames to as many SSE sockets in as many writes at the same pace."
export const goals = { fanoutCpuRatio: '<= 1.2', missing: '== 0' }

const SUBSCRIBERS = 1000
/** PUTs a second: 25,000 deliveries a second, which two cores carry with room for the load generator */
const RATE = 25
const CONTROL = fileURLToPath(new URL('./sse-control.js', import.meta.url))

interface FeedRun {
  puts: number
  /** server CPU of the same PUTs with nobody listening, in ms */
  aloneCpuMs: number
  cpuMs: number
  deliveries: number
  missing: number
  writes: number
  writingMs: number
  p50Ms: number
  p99Ms: number
  /** a frame of the window as the server sent it */
  frame: string
}

export async function benchFanoutCpu(): Promise<Record<string, number>> {
  const seconds = process.env.BENCH_QUICK === '1' ? 5 : 15
  const feed = await feedRun(seconds)
  const control = await controlRun(feed)
  const fanoutCpuMs = feed.cpuMs - feed.aloneCpuMs
  const figures = {
    subscribers: SUBSCRIBERS,
    puts: feed.puts,
    putsPerSec: round((feed.puts * 1000) / feed.writingMs),
    deliveries: feed.deliveries,
    missing: feed.missing + control.missing,
    putCpuUsAlone: round((feed.aloneCpuMs * 1000) / feed.puts),
    feedCpuUsPerDelivery: round((fanoutCpuMs * 1000) / feed.deliveries),
    feedCpuUsPerWrite: round((fanoutCpuMs * 1000) / feed.writes),
    deliveriesPerWrite: round(feed.deliveries / feed.writes),
    controlCpuUsPerDelivery: round((control.cpuMs * 1000) / control.frames),
    controlCpuUsPerWrite: round((control.cpuMs * 1000) / control.writes),
    fanoutCpuRatio: 0,
    p50Ms: feed.p50Ms,
    p99Ms: feed.p99Ms,
  }
  figures.fanoutCpuRatio = round(figures.feedCpuUsPerDelivery / figures.controlCpuUsPerDelivery)
  console.log(
    `fanout-cpu: ${SUBSCRIBERS} streams, ${feed.puts} PUTs at ${figures.putsPerSec}/s: feed ${figures.feedCpuUsPerDelivery} µs/delivery ` +
      `(${figures.deliveriesPerWrite} deliveries/write, ${figures.feedCpuUsPerWrite} µs/write), control ${figures.controlCpuUsPerDelivery} µs/delivery ` +
      `(${figures.controlCpuUsPerWrite} µs/write): ratio ${figures.fanoutCpuRatio}; write→delivery p50 ${feed.p50Ms} ms, p99 ${feed.p99Ms} ms`,
  )
  return figures
}

/** The homeserver: the PUTs alone, then the same PUTs to 1,000 listeners. */
async function feedRun(seconds: number): Promise<FeedRun> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-fanout-cpu-'))
  // no keepalive in the window: every write it counts carries events
  const server = await ChildServer.start({ dataDir, env: { MAX_STREAMS_PER_IP: '100000', METRICS_PORT: '0', KEEPALIVE_MS: '3600000' } })
  let counters: FrameCounter[] = []
  try {
    const writer = new HomeserverClient(server.url, randomKeypair())
    await writer.signup()
    const steady = new SteadyWriter(writer, '/pub/fanout')
    await steady.write(RATE, 2) // the writer's connection and the server's write path warm
    let cpu = server.cpuMs()
    const puts = (await steady.write(RATE, seconds)).length
    const aloneCpuMs = server.cpuMs() - cpu

    counters = await openCounters(server.url, '/subscribe?filter=*', SUBSCRIBERS, { timed: true })
    const warm = await steady.write(RATE, 2) // and the fan-out path
    const warmed = SUBSCRIBERS * warm.length
    if ((await countersReach(counters, warmed)) < warmed) throw new Error('the warm-up was not delivered in full')
    const metrics = server.metricsUrl!
    const before = await Scrape.of(metrics)
    const at = counters.map((c) => c.events)
    cpu = server.cpuMs()
    const sent = await steady.write(RATE, seconds)
    const writingMs = performance.now() - sent[0]!
    const expected = SUBSCRIBERS * sent.length
    const deliveries = (await countersReach(counters, warmed + expected)) - warmed
    const cpuMs = server.cpuMs() - cpu
    const after = await Scrape.of(metrics)
    const writes = after.value('hearth_feed_writes_total', { protocol: 'subscribe' }) - before.value('hearth_feed_writes_total', { protocol: 'subscribe' })

    const latencies: number[] = []
    for (const [j, c] of counters.entries()) {
      for (const [k, t] of sent.entries()) {
        const arrived = c.arrivals![at[j]! + k]
        if (arrived !== undefined) latencies.push(arrived - t)
      }
    }
    latencies.sort((a, b) => a - b)
    const head = after.value('hearth_event_log_head')
    const replay = await fetch(`${server.url}/subscribe?lastSeq=${head - 1}&live=false&limit=1`).then((r) => r.text())
    const frame = replay.split('\n\n').find((f) => f.includes('\nevent: PUT\n'))
    if (frame === undefined) throw new Error(`no event frame in ${JSON.stringify(replay)}`)
    return { puts, aloneCpuMs, cpuMs, deliveries, missing: expected - deliveries, writes, writingMs, p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99), frame: `${frame}\n\n` }
  } finally {
    for (const c of counters) c.close()
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** The control: as many frames and writes per socket as the feed made, at its pace. */
async function controlRun(feed: FeedRun): Promise<{ cpuMs: number; frames: number; writes: number; missing: number }> {
  const child = fork(CONTROL, [], { execArgv: [...CLI_NODE_FLAGS], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let counters: FrameCounter[] = []
  try {
    const { port } = await reply<{ port: number }>(child, 'port')
    counters = await openCounters(`http://127.0.0.1:${port}`, '/', SUBSCRIBERS)
    const perSocket = Math.max(1, Math.round(feed.writes / SUBSCRIBERS))
    const framesPerWrite = Array.from({ length: perSocket }, (_, i) => Math.floor(((i + 1) * feed.puts) / perSocket) - Math.floor((i * feed.puts) / perSocket))
    const intervalMs = feed.writingMs / perSocket
    const schedule = { frame: feed.frame, intervalMs }
    // a warm-up of two seconds' writes at the same pace, so the control runs compiled code too
    const warmWrites = Math.max(1, Math.round(2000 / intervalMs))
    child.send({ ...schedule, framesPerWrite: framesPerWrite.slice(0, warmWrites) })
    await reply(child, 'written')
    const warmed = SUBSCRIBERS * framesPerWrite.slice(0, warmWrites).reduce((a, b) => a + b, 0)
    await countersReach(counters, warmed)
    const cpu = cpuTicks(child.pid)!
    child.send({ ...schedule, framesPerWrite })
    await reply(child, 'written')
    const expected = SUBSCRIBERS * feed.puts
    const frames = (await countersReach(counters, warmed + expected)) - warmed
    const cpuMs = (cpuTicks(child.pid)! - cpu) * 10
    return { cpuMs, frames, writes: SUBSCRIBERS * perSocket, missing: expected - frames }
  } finally {
    for (const c of counters) c.close()
    child.kill()
  }
}

/** The child's next message that has `key`; rejects if it exits first. */
function reply<T>(child: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (!(key in m)) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(m as T)
    }
    const onExit = (code: number | null) => reject(new Error(`the control exited (${code}) before saying ${key}`))
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!)
}

const round = (n: number) => Math.round(n * 100) / 100

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(await benchFanoutCpu())
}
