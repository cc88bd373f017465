import { mkdtempSync, rmSync } from 'node:fs'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Level } from 'level'
import { randomKeypair } from '../src/auth/keys.js'
import type { HearthEvent } from '../src/events/event.js'
import { seqKey } from '../src/kv/level/store.js'
import type { BatchOp } from '../src/kv/level/ordered-map.js'
import { LevelKV } from '../src/kv/level/level-map.js'
import { ChildServer } from '../test/helpers/child-server.js'
import { CpuProfiler } from './cpu-profile.js'
import type { ProfileSummary } from './report.js'

/**
 * Replay speed: one SSE client reads the whole log from seq 0 (`/subscribe?lastSeq=0&live=false`,
 * every event matching), against a raw LevelDB iteration over the same log namespace in the same
 * run. The log is written straight into the store with large batches (the `log` namespace and
 * the head, laid out as the writer lays them out; the per-user index, which a `*` replay never
 * reads, is left out), which takes a minute where a million PUTs would take many. The server
 * runs as `hearth serve` in a child process; the client only counts frames. Each side runs
 * twice and keeps its best; a third replay, from a restarted server, runs under the CPU profiler.
 */
export const description = 'Replay of the whole log to one /subscribe client vs a raw LevelDB iteration of the same log; `ratio` = SSE events/s ÷ raw events/s.'
export const goals = { ratio: '>= 0.5', missing: '== 0' }
export let profiles: ProfileSummary[] = []

export async function benchReplay(): Promise<Record<string, number | string>> {
  const events = process.env.BENCH_QUICK === '1' ? 100_000 : 1_000_000
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-replay-'))
  try {
    const built = await buildLog(dataDir, events)
    let rawMs = Infinity
    for (let i = 0; i < 2; i++) rawMs = Math.min(rawMs, await rawIteration(dataDir, events))
    const profiler = new CpuProfiler()
    const server = await ChildServer.start({ dataDir, env: profiler.env })
    let sseMs = Infinity
    let delivered = 0
    let bytes = 0
    try {
      for (let i = 0; i < 2; i++) {
        const run = await replay(server.url)
        delivered = run.events
        bytes = run.bytes
        sseMs = Math.min(sseMs, run.ms)
      }
      // from a restarted server, so that the profiled replay reads every page as the measured ones did
      // (a log of 100k events, the quick run's, fits the page pool and would be served from it)
      await server.restart()
      profiles = [(await profiler.window(server.pid!, `a replay of the ${events.toLocaleString('en')} events`, () => replay(server.url))).profile]
    } finally {
      await server.stop()
      profiler.close()
    }
    const rawPerSec = Math.round(events / (rawMs / 1000))
    const ssePerSec = Math.round(events / (sseMs / 1000))
    const ratio = Math.round((ssePerSec / rawPerSec) * 100) / 100
    console.log(`replay: ${events.toLocaleString('en')} events (${built.toFixed(1)} s to build the log with batches)`)
    console.log(`  raw LevelDB iteration:  ${rawPerSec.toLocaleString('en')} events/s (${Math.round(rawMs)} ms)`)
    console.log(`  SSE replay to 1 client: ${ssePerSec.toLocaleString('en')} events/s (${Math.round(sseMs)} ms, ${(bytes / 1048576).toFixed(0)} MiB)`)
    console.log(`  ratio:                  ${ratio} (goal ≥ 0.5)`)
    return { events, missing: events - delivered, rawEventsPerSec: rawPerSec, sseEventsPerSec: ssePerSec, ratio, sseMiBPerSec: Math.round(bytes / 1048576 / (sseMs / 1000)) }
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/**
 * Writes events `from`..`n` of 1,000 users into the global log, as the writer would have, in
 * batches of 10,000; `from` above 1 extends a log this built before (its head is `from - 1`).
 */
export async function buildLog(dataDir: string, n: number, from = 1): Promise<number> {
  const started = performance.now()
  const kv = new LevelKV(join(dataDir, 'db'))
  await kv.open()
  const users = Array.from({ length: 1000 }, () => randomKeypair().z32)
  const hash = Buffer.alloc(32, 7).toString('base64')
  const ts = Date.now()
  for (let first = from; first <= n; first += 10_000) {
    const ops: BatchOp[] = []
    for (let seq = first; seq < first + 10_000 && seq <= n; seq++) {
      const user = users[seq % users.length]!
      const ev: HearthEvent = seq % 10 === 0
        ? { seq, type: 'DEL', user, path: `/pub/pubky.app/posts/${(seq - 5).toString(36)}`, ts }
        : { seq, type: 'PUT', user, path: `/pub/pubky.app/posts/${seq.toString(36)}`, contentHash: hash, size: 240, ts }
      const value = JSON.stringify(ev)
      ops.push({ type: 'put', ns: 'log', key: seqKey(seq), value })
    }
    await kv.batch(ops)
  }
  await kv.batch([{ type: 'put', ns: 'meta', key: 'head', value: String(n) }], { sync: true })
  await kv.close()
  return (performance.now() - started) / 1000
}

/** Keys and values of the log namespace, in order, in batches: the floor any reader stands on. */
async function rawIteration(dataDir: string, expected: number): Promise<number> {
  const db = new Level<string, string>(join(dataDir, 'db'))
  await db.open()
  const log = db.sublevel<string, string>('log', { keyEncoding: 'utf8', valueEncoding: 'utf8' })
  const started = performance.now()
  const it = log.iterator()
  let count = 0
  for (;;) {
    const batch = await it.nextv(1000, {})
    if (batch.length === 0) break
    count += batch.length
  }
  await it.close()
  const ms = performance.now() - started
  await db.close()
  if (count !== expected) throw new Error(`raw iteration found ${count} events, expected ${expected}`)
  return ms
}

/** Reads `/subscribe?lastSeq=<after>&live=false` to its end, counting event frames. */
export function replay(url: string, after = 0): Promise<{ ms: number; events: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    get(`${url}/subscribe?lastSeq=${after}&live=false`, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`))
      const count = eventCounter()
      let events = 0
      let bytes = 0
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        events += count(chunk)
      })
      res.on('end', () => resolve({ ms: performance.now() - started, events, bytes }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

/**
 * Counts the `event:` lines of a stream of SSE bytes, chunk by chunk, without decoding them.
 * The frames are whole within each write of the server, so an HTTP chunk header never splits
 * one; a TCP read may, and the marker is also looked for across the joint of two chunks.
 */
export function eventCounter(): (chunk: Buffer) => number {
  const marker = Buffer.from('\nevent: ')
  let tail: Buffer = Buffer.alloc(0)
  return (chunk) => {
    let events = 0
    // a marker may straddle two chunks: search the joint with the previous chunk's tail
    const joint = Buffer.concat([tail, chunk.subarray(0, marker.length)])
    for (let at = joint.indexOf(marker); at >= 0 && at < tail.length; at = joint.indexOf(marker, at + 1)) events++
    for (let at = chunk.indexOf(marker); at >= 0; at = chunk.indexOf(marker, at + 1)) events++
    tail = chunk.subarray(Math.max(0, chunk.length - marker.length + 1))
    return events
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchReplay()
}
