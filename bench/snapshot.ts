import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { STORED_LAYOUT } from '../src/events/stored.js'
import { fileKey, type FileMeta } from '../src/kv/store.js'
import { LevelKV } from '../src/kv/level/level-map.js'
import type { BatchOp } from '../src/kv/level/ordered-map.js'
import { ChildServer } from '../test/helpers/child-server.js'
import { postgresAvailable } from '../test/helpers/postgres.js'
import { MemorySampler, benchEvent, benchUsers, buildLog, buildPostgresLog, readStream, replay } from './replay.js'

/**
 * Snapshot, then follow: one client reads `/subscribe?snapshot=true&live=false` of every file
 * (the `*` filter, so each of 1,000 users' ranges), against a replay of a log of as many
 * events, side by side, on LevelDB and on PostgreSQL. The files and the log are written
 * straight into storage (each file the state one event of the log left), the server runs as
 * `hearth serve` in a child process, and its RSS is sampled every 20 ms during the snapshot:
 * the growth over its RSS before is what a snapshot of that many files costs in memory (and
 * RssAnon's, the part that is not pages of mapped files).
 */
export const description = 'A snapshot of every file (1M, 1,000 users) to one /subscribe?snapshot=true client vs a replay of as many events, on LevelDB and PostgreSQL; peak server RSS growth during the snapshot.'
export const goals = { missing: '== 0', peakRssGrowthMb: '< 100', pgMissing: '== 0', pgPeakRssGrowthMb: '< 100' }

/** The files the log's PUTs leave, one per PUT event (the log's DELs name other paths). */
function fileOf(seq: number, names: string[], hash: string, ts: number): { user: string; path: string; meta: FileMeta } {
  const ev = benchEvent(seq, names, hash, ts)
  return { user: ev.user, path: `/pub/pubky.app/files/${seq.toString(36)}`, meta: { size: 240, hash, type: 'application/json', mtime: ts, seq } }
}

export async function benchSnapshot(): Promise<Record<string, number | string>> {
  const n = process.env.BENCH_QUICK === '1' ? 100_000 : 1_000_000
  const out: Record<string, number | string> = { files: n, ...(await levelSnapshot(n)) }
  Object.assign(out, (await postgresAvailable()) ? await postgresSnapshot(n) : { pgSkipped: 'no PostgreSQL' })
  return out
}

async function levelSnapshot(n: number): Promise<Record<string, number>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-snapshot-'))
  try {
    const names = benchUsers()
    await buildLog(dataDir, n, 1, names)
    const kv = new LevelKV(join(dataDir, 'db'))
    await kv.open()
    const hash = Buffer.alloc(32, 7).toString('base64')
    for (let first = 1; first <= n; first += 10_000) {
      const ops: BatchOp[] = []
      for (let seq = first; seq < first + 10_000 && seq <= n; seq++) {
        const f = fileOf(seq, names, hash, 1)
        ops.push({ type: 'put', ns: 'files', key: fileKey(f.user, f.path), value: JSON.stringify(f.meta) })
      }
      await kv.batch(ops)
    }
    await kv.batch([
      ...names.map((u): BatchOp => ({ type: 'put', ns: 'users', key: u, value: JSON.stringify({ createdAt: 1, usage: 0 }) })),
      { type: 'put', ns: 'meta', key: 'fileSeqs', value: 'kept' },
      { type: 'put', ns: 'meta', key: 'events', value: STORED_LAYOUT },
    ], { sync: true })
    await kv.close()
    return await measure({ dataDir }, n, '')
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

async function postgresSnapshot(n: number): Promise<Record<string, number>> {
  const fns: (() => unknown)[] = []
  const t = { teardown: (fn: () => unknown) => void fns.push(fn) }
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-snapshot-pg-'))
  try {
    const names = benchUsers()
    const url = await buildPostgresLog(t, n, names)
    const pool = new pg.Pool({ connectionString: url, max: 1 })
    try {
      const hash = Buffer.alloc(32, 7).toString('base64')
      await pool.query('INSERT INTO users (id, created_at) SELECT * FROM unnest($1::text[], $2::int8[])', [names, names.map(() => 1)])
      for (let first = 1; first <= n; first += 10_000) {
        const files = []
        for (let seq = first; seq < first + 10_000 && seq <= n; seq++) files.push(fileOf(seq, names, hash, 1))
        await pool.query(
          `INSERT INTO files (key, user_id, size, hash, type, mtime, seq, content)
           SELECT k, u, 240, $3, 'application/json', 1, q, '\\x00' FROM unnest($1::text[], $2::text[], $4::int8[]) AS f(k, u, q)`,
          [files.map((f) => fileKey(f.user, f.path)), files.map((f) => f.user), hash, files.map((f) => f.meta.seq)],
        )
      }
      await pool.query('VACUUM ANALYZE files')
    } finally {
      await pool.end()
    }
    const figures = await measure({ dataDir, env: { DATABASE_URL: url } }, n, 'pg')
    return figures
  } finally {
    for (const fn of fns.reverse()) await fn()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** The snapshot and the replay from one server, best of two each; RSS sampled during the first snapshot. */
async function measure(opts: { dataDir: string; env?: Record<string, string> }, n: number, prefix: string): Promise<Record<string, number>> {
  const server = await ChildServer.start({ ...opts, startTimeoutMs: 300_000 })
  try {
    const sampler = new MemorySampler(server)
    let growth = { rssMb: 0, anonMb: 0 }
    let snapMs = Infinity
    let files = 0
    try {
      for (let i = 0; i < 2; i++) {
        const run = await readStream(`${server.url}/subscribe?snapshot=true&live=false`)
        snapMs = Math.min(snapMs, run.ms)
        files = run.events - 1 // and `synced`
        if (i === 0) growth = sampler.stop()
      }
    } finally {
      sampler.stop()
    }
    let replayMs = Infinity
    for (let i = 0; i < 2; i++) replayMs = Math.min(replayMs, (await replay(server.url)).ms)
    const name = (s: string) => (prefix === '' ? s : prefix + s[0]!.toUpperCase() + s.slice(1))
    const filesPerSec = Math.round(n / (snapMs / 1000))
    const eventsPerSec = Math.round(n / (replayMs / 1000))
    console.log(`snapshot${prefix === '' ? '' : ' on PostgreSQL'}: ${n.toLocaleString('en')} files at ${filesPerSec.toLocaleString('en')}/s; replay of as many events ${eventsPerSec.toLocaleString('en')}/s; RSS +${growth.rssMb} MB (its own, RssAnon: +${growth.anonMb} MB)`)
    return {
      [name('missing')]: n - files,
      [name('snapshotFilesPerSec')]: filesPerSec,
      [name('replayEventsPerSec')]: eventsPerSec,
      [name('snapshotToReplay')]: Math.round((filesPerSec / eventsPerSec) * 100) / 100,
      [name('peakRssGrowthMb')]: growth.rssMb,
      [name('anonGrowthMb')]: growth.anonMb,
    }
  } finally {
    await server.stop()
  }
}
