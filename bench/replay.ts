import { mkdtempSync, rmSync } from 'node:fs'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Level } from 'level'
import pg from 'pg'
import { randomKeypair } from '../src/auth/keys.js'
import type { HearthEvent } from '../src/events/event.js'
import { STORED_LAYOUT, encodeStored } from '../src/events/stored.js'
import { seqKey } from '../src/kv/level/store.js'
import type { BatchOp } from '../src/kv/level/ordered-map.js'
import { LevelKV } from '../src/kv/level/level-map.js'
import { ChildServer } from '../test/helpers/child-server.js'
import { freshDatabase, postgresAvailable } from '../test/helpers/postgres.js'
import { openPostgresStore } from '../src/kv/postgres/store.js'
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
 * Then the same on PostgreSQL (when one answers): the log's rows inserted as commits write them,
 * a paged SELECT of them as the reference, and a server on that database replaying them.
 */
export const description = 'Replay of the whole log to one /subscribe client vs a raw scan of the same log: LevelDB iteration (`ratio` = SSE events/s ÷ raw events/s), and on PostgreSQL a paged SELECT of the same rows (`pgRatio`).'
export const goals = { ratio: '>= 0.6', missing: '== 0', pgMissing: '== 0' }
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
    let growth = { rssMb: 0, anonMb: 0 }
    try {
      for (let i = 0; i < 2; i++) {
        const sampler = i === 0 ? new MemorySampler(server) : undefined
        const run = await replay(server.url)
        if (sampler !== undefined) growth = sampler.stop()
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
    console.log(`  ratio:                  ${ratio} (goal ≥ 0.6)`)
    console.log(`  server memory during the first replay: RSS +${growth.rssMb} MB, of it its own (RssAnon) +${growth.anonMb} MB; the rest is pages of the mapped log`)
    const pg = (await postgresAvailable()) ? await postgresReplay(events) : { pgSkipped: 'no PostgreSQL' }
    return {
      events, missing: events - delivered, rawEventsPerSec: rawPerSec, sseEventsPerSec: ssePerSec, ratio, sseMiBPerSec: Math.round(bytes / 1048576 / (sseMs / 1000)),
      rssGrowthMb: growth.rssMb, anonGrowthMb: growth.anonMb,
      ...pg,
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** The most a server's RSS and RssAnon grew over what they were at the start, sampled every 20 ms. */
export class MemorySampler {
  readonly #rss: number
  readonly #anon: number
  #peakRss: number
  #peakAnon: number
  readonly #timer: NodeJS.Timeout

  constructor(server: ChildServer) {
    this.#rss = this.#peakRss = server.rss()
    this.#anon = this.#peakAnon = server.rssAnon()
    this.#timer = setInterval(() => {
      this.#peakRss = Math.max(this.#peakRss, server.rss())
      this.#peakAnon = Math.max(this.#peakAnon, server.rssAnon())
    }, 20)
  }

  stop(): { rssMb: number; anonMb: number } {
    clearInterval(this.#timer)
    const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10
    return { rssMb: mb(this.#peakRss - this.#rss), anonMb: mb(this.#peakAnon - this.#anon) }
  }
}

/**
 * Writes events `from`..`n` of 1,000 users into the global log, as the writer would have, in
 * batches of 10,000; `from` above 1 extends a log this built before (its head is `from - 1`).
 */
export async function buildLog(dataDir: string, n: number, from = 1, users = benchUsers()): Promise<number> {
  const started = performance.now()
  const kv = new LevelKV(join(dataDir, 'db'))
  await kv.open()
  const hash = Buffer.alloc(32, 7).toString('base64')
  const ts = Date.now()
  for (let first = from; first <= n; first += 10_000) {
    const ops: BatchOp[] = []
    for (let seq = first; seq < first + 10_000 && seq <= n; seq++) {
      ops.push({ type: 'put', ns: 'log', key: seqKey(seq), value: encodeStored(benchEvent(seq, users, hash, ts)) })
    }
    await kv.batch(ops)
  }
  await kv.batch([
    { type: 'put', ns: 'meta', key: 'head', value: String(n) },
    { type: 'put', ns: 'meta', key: 'events', value: STORED_LAYOUT },
  ], { sync: true })
  await kv.close()
  return (performance.now() - started) / 1000
}

/** The 1,000 users a bench log's events are written by. */
export function benchUsers(): string[] {
  return Array.from({ length: 1000 }, () => randomKeypair().z32)
}

/** Event `seq` of a bench log: posts of `users` in turn, one in ten a DEL. */
export function benchEvent(seq: number, users: string[], hash: string, ts: number): HearthEvent {
  const user = users[seq % users.length]!
  return seq % 10 === 0
    ? { seq, type: 'DEL', user, path: `/pub/pubky.app/posts/${(seq - 5).toString(36)}`, ts }
    : { seq, type: 'PUT', user, path: `/pub/pubky.app/posts/${seq.toString(36)}`, contentHash: hash, size: 240, ts }
}

/**
 * The same log in a PostgreSQL database of its own, rows as the commit writes them, straight
 * into the events table in batches. Resolves with the database's URL.
 */
export async function buildPostgresLog(t: Parameters<typeof freshDatabase>[0], n: number, users = benchUsers()): Promise<string> {
  const url = await freshDatabase(t)
  await (await openPostgresStore(url)).close() // the schema
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  try {
    const hash = Buffer.alloc(32, 7).toString('base64')
    const ts = Date.now()
    for (let first = 1; first <= n; first += 10_000) {
      const evs: HearthEvent[] = []
      for (let seq = first; seq < first + 10_000 && seq <= n; seq++) evs.push(benchEvent(seq, users, hash, ts))
      await pool.query('INSERT INTO events (seq, user_id, path, stored) SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[])', [
        evs.map((e) => e.seq), evs.map((e) => e.user), evs.map((e) => e.path), evs.map(encodeStored),
      ])
    }
    await pool.query("UPDATE log_bounds SET value = $1 WHERE name = 'head'", [n])
    await pool.query('VACUUM ANALYZE events')
  } finally {
    await pool.end()
  }
  return url
}

/** The reference on PostgreSQL: the same rows, as the store reads them, a page of 1,000 per query, in seq order. */
async function rawSelect(url: string, expected: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  try {
    const started = performance.now()
    let count = 0
    for (let after = 0; ;) {
      const { rows } = await pool.query<{ seq: string; stored: string }>('SELECT seq, stored FROM events WHERE seq > $1 ORDER BY seq LIMIT 1000', [after])
      if (rows.length === 0) break
      count += rows.length
      after = Number(rows[rows.length - 1]!.seq)
    }
    const ms = performance.now() - started
    if (count !== expected) throw new Error(`raw select found ${count} events, expected ${expected}`)
    return ms
  } finally {
    await pool.end()
  }
}

/** The same replay from a server on that database, against the raw select: best of two each. */
async function postgresReplay(events: number): Promise<Record<string, number>> {
  const fns: (() => unknown)[] = []
  const t = { teardown: (fn: () => unknown) => void fns.push(fn) }
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-replay-pg-'))
  try {
    const url = await buildPostgresLog(t, events)
    let rawMs = Infinity
    for (let i = 0; i < 2; i++) rawMs = Math.min(rawMs, await rawSelect(url, events))
    const server = await ChildServer.start({ dataDir, env: { DATABASE_URL: url } })
    let sseMs = Infinity
    let delivered = 0
    try {
      for (let i = 0; i < 2; i++) {
        const run = await replay(server.url)
        delivered = run.events
        sseMs = Math.min(sseMs, run.ms)
      }
    } finally {
      await server.stop()
    }
    const raw = Math.round(events / (rawMs / 1000))
    const sse = Math.round(events / (sseMs / 1000))
    const ratio = Math.round((sse / raw) * 100) / 100
    console.log(`  PostgreSQL raw select:  ${raw.toLocaleString('en')} events/s (${Math.round(rawMs)} ms)`)
    console.log(`  SSE replay, PostgreSQL: ${sse.toLocaleString('en')} events/s (${Math.round(sseMs)} ms)`)
    console.log(`  ratio on PostgreSQL:    ${ratio} (reported: the reference is a paged SELECT, not the same engine)`)
    return { pgMissing: events - delivered, pgRawEventsPerSec: raw, pgSseEventsPerSec: sse, pgRatio: ratio }
  } finally {
    for (const fn of fns.reverse()) await fn()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** Keys and values of the log namespace, in order, in batches: the floor any reader stands on. */
export async function rawIteration(dataDir: string, expected: number): Promise<number> {
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
  return readStream(`${url}/subscribe?lastSeq=${after}&live=false`)
}

/** Reads a finite SSE stream to its end, counting its `event:` frames and bytes. */
export function readStream(url: string): Promise<{ ms: number; events: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    get(url, (res) => {
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
