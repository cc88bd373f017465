import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { randomKeypair } from '../../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { ChildServer } from './child-server.js'
import { percentile } from './event-checks.js'
import { Scrape } from './prometheus.js'
import { openSse, readSubscribe, type SseConnection, type StreamEvent } from './sse.js'
import type { SseFrame } from './sse-frames.js'
import { StalledReader } from './stalled-reader.js'

export interface StalledOptions {
  dataDir: string
  /** all streams, stalled ones included */
  streams: number
  stalled: number
  /** how long the steady writes last */
  seconds: number
  /** PUTs per second, half with ~4 KB paths (8 KB frames) that fill stalled sockets fast */
  rate?: number
  /** keep writing past `seconds` (up to three times as long) until this many were written */
  minEvents?: number
  /**
   * Keep writing (up to three times `seconds`) until the server has this many streams off the
   * live path because their sockets backed up: a run proves the server's bound only once the
   * stalled sockets are past everything the kernel buffers, and how much that is depends on
   * the machine.
   */
  minBehind?: number
  /** every stalled reader stays stalled to the end of the writes, then all resume at once (default: half resume midway) */
  allResumeAtEnd?: boolean
  progress?: (line: string) => void
  /** more settings for the server process (e.g. NODE_OPTIONS) */
  serverEnv?: Record<string, string>
}

export interface StalledFigures {
  streams: number
  stalled: number
  events: number
  rssBaselineMb: number
  /** a quarter into the writes, before any stalled socket can have filled its kernel buffers */
  rssWarmMb: number
  rssMaxMb: number
  rssFinalMb: number
  /** the most the server grew above its warm size while streams were stalled */
  rssGrowthMb: number
  /** how far RSS rose above its size at the end of the writes while the readers still stalled all resumed at once and caught up */
  rssResumeGrowthMb: number
  /** bytes of frames each reader stalled to the end was sent */
  stalledBytesEachMb: number
  /**
   * streams off the live path when the writes stopped (`hearth_streams` in phase `replay` or
   * `catching_up`): the server's own word that stalled sockets backed up past whatever the
   * kernel buffers, however large this machine's loopback buffers are
   */
  behindAtEnd: number
  latencyP50Ms: number
  latencyP99Ms: number
  latencyMaxMs: number
  /** stalled readers that, once resumed, got every event in order */
  stalledComplete: number
  liveComplete: number
  violations: number
}

const MB = 1024 * 1024
// 15 segments of 250 bytes: a path near the 4096-byte limit, so one frame is ~8 KB
const LONG = Array.from({ length: 15 }, (_, i) => String.fromCharCode(97 + i).repeat(250)).join('/')

interface Reader {
  name: string
  wants: (ev: StreamEvent) => boolean
  /**
   * `seenLine` of each event received: a thousand readers of thousands of events with 4 KB
   * paths would hold gigabytes in this process as parsed events
   */
  seen: string[]
  /** bytes of the frames received, near enough */
  bytes: number
  stalled?: StalledReader
  live?: SseConnection
}

/**
 * Many subscribers, some of which stop reading (raw sockets, paused right after the request),
 * under steady writes. The server runs as a child process so its RSS can be sampled. Half the
 * stalled readers resume midway and rejoin, the rest at the end; every reader must then hold
 * exactly the events after its cursor that match its filter, in order.
 */
export async function runStalled(o: StalledOptions): Promise<{ figures: StalledFigures; violations: string[] }> {
  const rate = o.rate ?? 150
  const violations: string[] = []
  const server = await ChildServer.start({ dataDir: o.dataDir, env: { MAX_STREAMS_PER_IP: '1000000', METRICS_PORT: '0', ...o.serverEnv } })
  /** `/subscribe` streams the server has off the live path now */
  const behind = async () => {
    const scrape = await Scrape.of(server.metricsUrl!)
    return ['replay', 'catching_up'].reduce((n, phase) => n + scrape.value('hearth_streams', { protocol: 'subscribe', phase }), 0)
  }
  const readers: Reader[] = []
  const latencies: number[] = []
  try {
    const writer = new HomeserverClient(server.url, randomKeypair())
    await writer.signup()
    const url = server.url
    const since = 0 // every reader starts from the beginning of the (empty) log

    // Live readers: most follow the small `tick` events, one in twenty follows everything.
    const liveCount = o.streams - o.stalled
    for (let i = 0; i < liveCount; i++) {
      const all = i % 20 === 0
      const r: Reader = { name: `live ${i}`, wants: all ? () => true : (ev) => ev.path.startsWith('/pub/tick/'), seen: [], bytes: 0 }
      const filter = all ? '*' : `${writer.user}/pub/tick/*`
      r.live = openSse(`${url}/subscribe?filter=${encodeURIComponent(filter)}&lastSeq=${since}`, {}, (f) => {
        const ev = eventOf(f)
        if (ev === undefined) return
        receive(r, ev)
        latencies.push(Date.now() - ev.ts)
      })
      readers.push(r)
    }
    for (const r of readers) {
      const res = await r.live!.response
      if (res.statusCode !== 200) violations.push(`${r.name}: ${res.statusCode}`)
    }
    const stalled: Reader[] = []
    for (let i = 0; i < o.stalled; i++) {
      const r: Reader = { name: `stalled ${i}`, wants: () => true, seen: [], bytes: 0 }
      r.stalled = new StalledReader(url, `/subscribe?filter=*&lastSeq=${since}`, (f) => {
        const ev = eventOf(f)
        if (ev !== undefined) receive(r, ev)
      })
      stalled.push(r)
      readers.push(r)
    }
    await sleep(1000)

    const rss: number[] = []
    const baseline = server.rss()
    let behindNow = 0
    let scraping = false
    const sampler = setInterval(() => {
      rss.push(server.rss())
      if (!scraping && o.minBehind !== undefined) {
        scraping = true
        void behind().then((v) => (behindNow = v), () => {}).finally(() => (scraping = false))
      }
      if (rss.length % 20 === 0) o.progress?.(`${Math.round((performance.now() - t0) / 1000)} s: ${n} writes, RSS ${mb(rss[rss.length - 1]!)} MB`)
    }, 250)
    const t0 = performance.now()
    let n = 0
    let inFlight = 0
    let resumedHalf = false
    let warm: number | undefined
    const writing = () => {
      const ms = performance.now() - t0
      const short = n < (o.minEvents ?? 0) || behindNow < (o.minBehind ?? 0)
      return ms < o.seconds * 1000 || (short && ms < o.seconds * 3000)
    }
    while (writing()) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate)
      while (n < due && inFlight < 64) {
        const i = n++
        inFlight++
        const path = i % 2 === 0 ? `/pub/stall/${LONG}/${i}` : `/pub/tick/${i}`
        void writer.put(path, `event ${i}`).then(
          () => inFlight--,
          (err: Error) => {
            inFlight--
            violations.push(`PUT ${i}: ${err.message}`)
          },
        )
      }
      if (warm === undefined && performance.now() - t0 > (o.seconds * 1000) / 4) warm = server.rss()
      if (!resumedHalf && o.allResumeAtEnd !== true && performance.now() - t0 > (o.seconds * 1000) / 2) {
        resumedHalf = true
        for (const r of stalled.slice(0, Math.ceil(stalled.length / 2))) r.stalled!.resume()
        o.progress?.(`resumed ${Math.ceil(stalled.length / 2)} stalled readers at ${n} writes, RSS ${mb(server.rss())} MB`)
      }
      await sleep(10)
    }
    while (inFlight > 0) await sleep(10)
    clearInterval(sampler)
    const behindAtEnd = await behind()
    const rssAtEnd = server.rss()
    o.progress?.(`${n} writes done, RSS ${mb(rssAtEnd)} MB (baseline ${mb(baseline)} MB)`)
    // the readers still stalled resume at once: the server's memory while they all catch up
    let rssResumeMax = rssAtEnd
    const resumeSampler = setInterval(() => (rssResumeMax = Math.max(rssResumeMax, server.rss())), 100)
    const memory = new MemoryPeaks(server.metricsUrl!)
    const memorySampler = setInterval(() => void memory.sample(), 250)
    const resumedAt = performance.now()
    const cpuAtEnd = server.cpuMs()
    for (const r of stalled) r.stalled!.resume()

    // everything written is in the log; each reader must end up with its share of it, in order
    const log = (await readSubscribe(`${url}/subscribe?filter=*&lastSeq=${since}&live=false`)).events
    if (log.length !== n) violations.push(`the log holds ${log.length} events, ${n} were written`)
    const deadline = Date.now() + 120_000
    const lines = new Map(log.map((ev) => [ev, seenLine(ev)]))
    const owed = (r: Reader) => log.filter(r.wants).map((ev) => lines.get(ev)!)
    const complete = (r: Reader) => r.seen.length >= log.filter(r.wants).length
    while (Date.now() < deadline && !readers.every(complete)) await sleep(100)
    clearInterval(resumeSampler)
    clearInterval(memorySampler)
    rssResumeMax = Math.max(rssResumeMax, server.rss())
    o.progress?.(`caught up in ${Math.round(performance.now() - resumedAt)} ms, server CPU ${Math.round(server.cpuMs() - cpuAtEnd)} ms; at most: ${memory.describe()}`)
    let stalledComplete = 0
    let liveComplete = 0
    for (const r of readers) {
      const problem = firstLineDifference(r.seen, owed(r))
      if (problem !== undefined) violations.push(`${r.name}: ${problem}`)
      else if (r.stalled) stalledComplete++
      else liveComplete++
      if (r.stalled && r.stalled.status !== 200) violations.push(`${r.name}: status ${r.stalled.status}`)
    }
    const rssFinal = server.rss()
    const rssMax = rss.reduce((a, b) => Math.max(a, b), baseline)
    const lastStalled = stalled[stalled.length - 1]
    const stalledBytes = lastStalled?.bytes ?? 0
    return {
      figures: {
        streams: o.streams, stalled: o.stalled, events: n,
        rssBaselineMb: mb(baseline), rssWarmMb: mb(warm ?? baseline), rssMaxMb: mb(rssMax), rssFinalMb: mb(rssFinal),
        rssGrowthMb: mb(rssMax - (warm ?? baseline)), stalledBytesEachMb: mb(stalledBytes), behindAtEnd,
        rssResumeGrowthMb: mb(rssResumeMax - rssAtEnd),
        latencyP50Ms: percentile(latencies, 0.5), latencyP99Ms: percentile(latencies, 0.99), latencyMaxMs: latencies.reduce((a, b) => Math.max(a, b), 0),
        stalledComplete, liveComplete, violations: violations.length,
      },
      violations,
    }
  } finally {
    for (const r of readers) {
      r.live?.close()
      r.stalled?.close()
    }
    await server.kill()
  }
}

/**
 * The highest value of each part of the server's memory seen by its scrapes (the process
 * metrics, the unsent bytes of its streams, the bytes its replay pages count).
 */
class MemoryPeaks {
  static readonly PARTS: [string, string, Record<string, string>][] = [
    ['heapUsed', 'hearth_nodejs_heap_size_used_bytes', {}],
    ['heapTotal', 'hearth_nodejs_heap_size_total_bytes', {}],
    ['newSpace', 'hearth_nodejs_heap_space_size_total_bytes', { space: 'new' }],
    ['oldSpace', 'hearth_nodejs_heap_space_size_total_bytes', { space: 'old' }],
    ['external', 'hearth_nodejs_external_memory_bytes', {}],
    ['unsent', 'hearth_stream_unsent_bytes', {}],
    ['pages', 'hearth_replay_page_bytes', {}],
  ]
  readonly peaks = new Map<string, number>()
  #busy = false

  constructor(readonly url: string) {}

  async sample(): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      const s = await Scrape.of(this.url)
      for (const [name, metric, labels] of MemoryPeaks.PARTS) this.peaks.set(name, Math.max(this.peaks.get(name) ?? 0, s.value(metric, labels)))
    } catch {
      // a scrape that fails under load is skipped
    } finally {
      this.#busy = false
    }
  }

  describe(): string {
    return [...this.peaks].map(([k, v]) => `${k} ${mb(v)}`).join(', ') + ' MB'
  }
}

function receive(r: Reader, ev: StreamEvent): void {
  r.seen.push(seenLine(ev))
  r.bytes += frameSize(ev)
}

/** An event's seq and a digest of the rest that matters: type, uri, content hash. */
function seenLine(ev: StreamEvent): string {
  return `${ev.seq} ${createHash('sha1').update(`${ev.type} ${ev.uri} ${ev.contentHash ?? ''}`).digest('base64url')}`
}

/** undefined when `got` is exactly `want`; otherwise the first difference. */
function firstLineDifference(got: readonly string[], want: readonly string[]): string | undefined {
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i]) return `event ${i} is ${got[i] ?? 'missing'}, the log has ${want[i] ?? 'nothing'} (seq and digest; ${got.length} vs ${want.length})`
  }
  return undefined
}

/** the size of an event's /subscribe frame, near enough: its JSON twice over the path */
function frameSize(ev: StreamEvent): number {
  return JSON.stringify(ev).length + 40
}

function eventOf(f: SseFrame): StreamEvent | undefined {
  if (f.data === undefined || (f.event !== 'PUT' && f.event !== 'DEL')) return undefined
  return JSON.parse(f.data) as StreamEvent
}

const mb = (bytes: number) => Math.round((bytes / MB) * 10) / 10

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
