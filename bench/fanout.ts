import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { Agent, get, request, type ClientRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { ChildServer } from '../test/helpers/child-server.js'
import { FrameParser } from '../test/helpers/sse-frames.js'
import { CpuProfiler } from './cpu-profile.js'
import type { ProfileSummary } from './report.js'

/**
 * Fan-out: many live subscribers, each with its own set of ten folder filters (`*\/pub/b<k>/*`
 * for ten of a hundred folders, so each matches ~10% of writes), while PUTs arrive at a steady
 * rate into random folders. Latency is write→delivery: from the moment the PUT is sent to the
 * moment its frame is parsed by a subscriber. The server runs as `hearth serve` in a child
 * process; writers and subscribers share this process and the machine's other core.
 *
 * Figures named `<series>@<n>` chart latency against the number of subscribers. A last window
 * of the main load runs under the CPU profiler.
 */
export const description = 'Write→delivery latency and delivered events/s with N live subscribers, each matching ~10% of steady PUTs.'
export const goals = { p99Ms: '< 50', missing: '== 0' }
export const chart = { title: 'Write→delivery latency vs subscribers', x: 'subscribers', y: 'latency (ms)' }
export let profiles: ProfileSummary[] = []

const FOLDERS = 100
const FILTERS_EACH = 10
const WRITERS = 10

export interface FanoutOptions {
  /** keep-alive connections for the writers, shared across runs so each starts warm */
  agent: Agent
  subscribers: number
  /** PUTs per second */
  rate: number
  seconds: number
}

export interface FanoutFigures {
  subscribers: number
  writes: number
  writesPerSec: number
  deliveries: number
  deliveredPerSec: number
  missing: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** from the event's commit time (server clock, ms) to its parse: the feed's own share */
  commitP50Ms: number
  commitP99Ms: number
  writeErrors: number
  /** PUT answer times: the write path's own share of the latency */
  putP50Ms: number
  putP99Ms: number
  /** delivery minus the PUT's answer: the fan-out's own share (the event is announced before the answer goes out) */
  afterAnswerP50Ms: number
  afterAnswerP99Ms: number
  /** CPU used while writing, as % of one core: this process (writers and readers), and the server */
  clientCpuPct: number
  serverCpuPct: number
}

/** Runs one fan-out against a running server. */
export async function fanout(url: string, writers: HomeserverClient[], o: FanoutOptions, serverPid?: number): Promise<FanoutFigures> {
  const sent: number[] = []
  const wantedBy = Array.from({ length: FOLDERS }, () => 0)
  const latencies: number[] = []
  const commitLatencies: number[] = []
  const delivered: number[] = []
  const readers: Reader[] = []
  for (let i = 0; i < o.subscribers; i++) {
    const folders = pickDistinct(FOLDERS, FILTERS_EACH)
    for (const k of folders) wantedBy[k]!++
    const query = folders.map((k) => `filter=${encodeURIComponent(`*/pub/b${k}/*`)}`).join('&')
    readers.push(new Reader(`${url}/subscribe?${query}`, (idx, ts) => {
      const now = performance.now()
      latencies.push(now - sent[idx]!)
      delivered.push(idx, now)
      commitLatencies.push(Date.now() - ts)
    }))
  }
  await Promise.all(readers.map((r) => r.opened))

  const { hostname, port } = new URL(url)
  const agent = o.agent
  const answered: number[] = []
  const folderOf: number[] = []
  let errors = 0
  let inFlight = 0
  const putTimes: number[] = []
  const cpu = process.cpuUsage()
  const serverCpu = cpuTicks(serverPid)
  const started = performance.now()
  const total = Math.round(o.rate * o.seconds)
  // open loop: a tick every 10 ms sends what the schedule says is due, whatever is pending
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.round(((performance.now() - started) / 1000) * o.rate))
      while (sent.length < due) {
        const idx = sent.length
        const k = Math.floor(Math.random() * FOLDERS)
        folderOf.push(k)
        sent.push(performance.now())
        inFlight++
        put(agent, hostname, Number(port), writers[idx % writers.length]!, `/pub/b${k}/${idx}`, () => {
          inFlight--
          answered[idx] = performance.now()
          putTimes.push(answered[idx]! - sent[idx]!)
        }, () => errors++)
      }
      if (sent.length >= total) {
        clearInterval(timer)
        resolve()
      }
    }, 10)
  })
  const writingMs = performance.now() - started
  const clientCpu = process.cpuUsage(cpu)
  const serverCpuPct = serverCpu === undefined ? 0 : Math.round(((cpuTicks(serverPid)! - serverCpu) * 10 * 100) / writingMs)
  while (inFlight > 0) await new Promise((r) => setTimeout(r, 10))
  const expected = folderOf.reduce((n, k) => n + wantedBy[k]!, 0)
  const deadline = Date.now() + 15_000
  while (latencies.length < expected - errors * o.subscribers && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  const deliveredMs = performance.now() - started
  for (const r of readers) r.close()
  const afterAnswer: number[] = []
  for (let i = 0; i < delivered.length; i += 2) afterAnswer.push(delivered[i + 1]! - answered[delivered[i]!]!)
  afterAnswer.sort((a, b) => a - b)

  latencies.sort((a, b) => a - b)
  commitLatencies.sort((a, b) => a - b)
  putTimes.sort((a, b) => a - b)
  return {
    subscribers: o.subscribers,
    writes: total,
    writesPerSec: Math.round(total / (writingMs / 1000)),
    deliveries: latencies.length,
    deliveredPerSec: Math.round(latencies.length / (deliveredMs / 1000)),
    missing: expected - latencies.length,
    p50Ms: at(latencies, 0.5),
    p99Ms: at(latencies, 0.99),
    maxMs: at(latencies, 1),
    commitP50Ms: at(commitLatencies, 0.5),
    commitP99Ms: at(commitLatencies, 0.99),
    writeErrors: errors,
    putP50Ms: at(putTimes, 0.5),
    putP99Ms: at(putTimes, 0.99),
    afterAnswerP50Ms: at(afterAnswer, 0.5),
    afterAnswerP99Ms: at(afterAnswer, 0.99),
    clientCpuPct: Math.round(((clientCpu.user + clientCpu.system) / 1000 / writingMs) * 100),
    serverCpuPct,
  }
}

/** User and system time of a process in clock ticks (1/100 s on Linux), from /proc. */
export function cpuTicks(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

/** Latency against the number of subscribers: one short fan-out per count, same server. */
export async function latencySeries(url: string, writers: HomeserverClient[], agent: Agent, counts: number[], rate: number, seconds: number, serverPid?: number): Promise<FanoutFigures[]> {
  const out: FanoutFigures[] = []
  for (const subscribers of counts) out.push(await fanout(url, writers, { agent, subscribers, rate, seconds }, serverPid))
  return out
}

export async function benchFanout(): Promise<Record<string, number>> {
  const quick = process.env.BENCH_QUICK === '1'
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-fanout-'))
  const profiler = new CpuProfiler()
  const server = await ChildServer.start({ dataDir, env: { MAX_STREAMS_PER_IP: '100000', ...profiler.env } })
  try {
    const writers = await Promise.all(Array.from({ length: WRITERS }, async () => {
      const c = new HomeserverClient(server.url, randomKeypair())
      await c.signup()
      return c
    }))
    const agent = new Agent({ keepAlive: true, maxSockets: 64 })
    // warm up: every connection open, the server's code paths compiled, the store past its first flushes
    await fanout(server.url, writers, { agent, subscribers: 10, rate: 1000, seconds: quick ? 2 : 4 })
    const main = await fanout(server.url, writers, { agent, subscribers: quick ? 200 : 1000, rate: 1000, seconds: quick ? 3 : 10 }, server.pid)
    const series = await latencySeries(server.url, writers, agent, quick ? [10, 100] : [10, 100, 300], 1000, quick ? 2 : 5, server.pid)
    const subscribers = quick ? 200 : 1000
    profiles = [(await profiler.window(server.pid!, `${quick ? 2 : 5} s of ${subscribers.toLocaleString('en')} live subscribers and 1,000 PUTs/s, from connecting them to the last delivery`, () => fanout(server.url, writers, { agent, subscribers, rate: 1000, seconds: quick ? 2 : 5 }))).profile]
    agent.destroy()
    series.push(main)
    console.log(`fanout: ${main.subscribers} subscribers × ${FILTERS_EACH} folder filters, ${main.writesPerSec} PUTs/s for ${quick ? 3 : 10} s`)
    console.log(`  write→delivery p50 ${main.p50Ms} ms, p99 ${main.p99Ms} ms (goal < 50), max ${main.maxMs} ms`)
    console.log(`  of which the PUT's answer p50 ${main.putP50Ms} ms, p99 ${main.putP99Ms} ms; delivery after the answer p50 ${main.afterAnswerP50Ms} ms, p99 ${main.afterAnswerP99Ms} ms`)
    console.log(`  ${main.deliveredPerSec.toLocaleString('en')} deliveries/s, ${main.missing} missing, ${main.writeErrors} write errors`)
    for (const s of series) {
      console.log(`  ${String(s.subscribers).padStart(5)} subscribers: p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, ${s.deliveredPerSec.toLocaleString('en')} deliveries/s; ` +
        `PUT answered p50 ${s.putP50Ms} ms, p99 ${s.putP99Ms} ms; CPU server ${s.serverCpuPct}%, client ${s.clientCpuPct}%`)
    }
    const figures: Record<string, number> = { ...main }
    for (const s of series) {
      figures[`p50Ms@${s.subscribers}`] = s.p50Ms
      figures[`p99Ms@${s.subscribers}`] = s.p99Ms
    }
    return figures
  } finally {
    await server.stop()
    profiler.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** A live `/subscribe` stream that reports each event's write index and commit time. */
class Reader {
  readonly opened: Promise<void>
  #req: ClientRequest

  constructor(url: string, onEvent: (idx: number, ts: number) => void) {
    this.opened = new Promise((resolve, reject) => {
      this.#req = get(url, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
        const frames = new FrameParser((f) => {
          const m = f.data === undefined ? null : EVENT.exec(f.data)
          if (m !== null) onEvent(Number(m[1]), Number(m[2]))
        })
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          // the retry frame comes first: the stream is open
          resolve()
          frames.push(chunk)
        })
        res.on('error', () => {})
      })
      this.#req.on('error', reject)
    })
    this.#req ??= undefined as never
  }

  close(): void {
    this.#req.destroy()
  }
}

const EVENT = /"path":"\/pub\/b\d+\/(\d+)".*?"ts":(\d+)\}/

function put(agent: Agent, hostname: string, port: number, writer: HomeserverClient, path: string, done: () => void, failed: () => void): void {
  const body = 'x'
  const req = request({ agent, hostname, port, path, method: 'PUT', headers: writer.headers({ 'content-length': '1' }) }, (res) => {
    if (res.statusCode !== 201) failed()
    res.resume()
    res.on('end', done)
  })
  req.on('error', () => {
    failed()
    done()
  })
  req.end(body)
}

function pickDistinct(n: number, k: number): number[] {
  const chosen = new Set<number>()
  while (chosen.size < k) chosen.add(Math.floor(Math.random() * n))
  return [...chosen]
}

function at(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 10) / 10
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchFanout()
}
