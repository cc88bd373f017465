import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ChildServer } from '../test/helpers/child-server.js'
import { hostileWorld, runHostile, type HostileFigures } from '../test/helpers/hostile-run.js'
import { fuzzSeed } from '../test/helpers/hostile-corpus.js'
import { RelayWatch } from '../test/helpers/hostile-relay.js'
import { stalledUploads } from '../test/helpers/hostile-stalls.js'
import { expiringSessions } from '../test/helpers/hostile-sessions.js'
import { freshDatabase, postgresAvailable } from '../test/helpers/postgres.js'
import type { Teardown } from '../test/helpers/server.js'

export const description = 'generated hostile requests against `hearth serve` on LevelDB and on PostgreSQL (the longest paths among them), with a relay following it beside redirecting and impostor upstreams, stalled uploads and expiring sessions: no 5xx, no crash, no /priv/ leak, the error shapes, no damage to stored data'
export const goals = { failures: '== 0', status5xx: '== 0', damaged: '== 0', serverAlive: '== 1' }

/** The side server's settings: short enough that stalls and expiries come within the run. */
const BODY_IDLE_MS = 500
const SESSION_TTL_MS = 15_000
const UPLOADS_TOTAL = 16

type Engine = 'leveldb' | 'postgres'

/**
 * Hostile input, long mode, on each engine: 100,000 generated requests on LevelDB and 25,000
 * on PostgreSQL (HOSTILE_REQUESTS and HOSTILE_PG_REQUESTS override), 32 at a time, against
 * `hearth serve` in its own process. Beside them, on the same engine:
 * - `hearth relay` follows that server, an upstream that redirects to a secret on 127.0.0.1 and
 *   an impostor claiming the server's key (test/helpers/hostile-relay.ts);
 * - a second server with BODY_IDLE_MS 500 and SESSION_TTL 15s takes uploads that stall
 *   mid-body (test/helpers/hostile-stalls.ts) and private streams whose sessions expire
 *   (test/helpers/hostile-sessions.ts).
 * `failures` counts every violation of all of them, on both engines, and must be 0; the
 * servers must still be running at the end. `requestsPerSecond` is the LevelDB run's rate
 * (request generation, on the client side, included).
 */
export async function benchHostile(requests = Number(process.env.HOSTILE_REQUESTS ?? 100_000), pgRequests = Number(process.env.HOSTILE_PG_REQUESTS ?? 25_000)): Promise<Record<string, number | Record<string, number>>> {
  const seed = fuzzSeed()
  const level = await onEngine('leveldb', requests, seed)
  const pg = await postgresAvailable()
    ? await onEngine('postgres', pgRequests, seed)
    : { figures: { failures: 1, status5xx: 0, damaged: 0, serverAlive: 0 }, failures: ['no PostgreSQL answers: the PostgreSQL run did not happen'] }
  const sum = (k: string) => (level.figures[k] ?? 0) + (pg.figures[k] ?? 0)
  const result = {
    ...level.figures,
    failures: sum('failures'),
    status5xx: sum('status5xx'),
    damaged: sum('damaged'),
    serverAlive: level.figures.serverAlive === 1 && pg.figures.serverAlive === 1 ? 1 : 0,
    postgres: pg.figures,
  }
  console.log(`hostile: ${result.failures} failures in all (seed ${seed})`)
  return result
}

async function onEngine(engine: Engine, requests: number, seed: number): Promise<{ figures: Record<string, number>; failures: string[] }> {
  const t = teardowns()
  try {
    const storage = async (name: string) => {
      const dir = mkdtempSync(join(tmpdir(), `hearth-bench-hostile-${name}-`))
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      return { DATA_DIR: dir, ...(engine === 'postgres' ? { DATABASE_URL: await freshDatabase(t) } : {}) }
    }
    const start = async (env: Record<string, string>) => {
      const { DATA_DIR, ...rest } = await storage('serve')
      const server = await ChildServer.start({ dataDir: DATA_DIR, env: { ...rest, ...env } })
      t.teardown(() => server.kill())
      return server
    }
    const password = 'bench password'
    const server = await start({ ADMIN_PASSWORD: password, MAX_STREAMS_PER_IP: '100000' })
    const side = await start({ BODY_IDLE_MS: String(BODY_IDLE_MS), SESSION_TTL: `${SESSION_TTL_MS / 1000}s`, UPLOADS_TOTAL: String(UPLOADS_TOTAL) })
    const relay = await RelayWatch.start(t, server.url, await storage('relay'))
    const world = await hostileWorld(server.url, password)

    let running = true
    const sampling = (async () => {
      while (running) {
        await relay.sample().catch((err: Error) => relay.failures.push(`the relay's /info did not answer: ${err.message}`))
        await new Promise((r) => setTimeout(r, 2000))
      }
    })()
    const [run, stalls, sessions] = await Promise.all([
      runHostile(server.url, world, { requests, seed, concurrency: 32, batch: 1000 }).finally(() => (running = false)),
      stalledUploads(side, { waves: 5, perWave: 40, bodyIdleMs: BODY_IDLE_MS, rssBound: 64 * 1024 * 1024 + UPLOADS_TOTAL * 3 * 1024 * 1024 }),
      expiringSessions(side.url, { streams: 16, ttlMs: SESSION_TTL_MS }),
    ])
    await sampling
    const relayed = await relay.finish()
    const damage = await world.damage()
    const parts: [string, string[]][] = [['generated', run.failures], ['damage', damage], ['relay', relayed.failures], ['stalled', stalls.failures], ['sessions', sessions.failures]]
    const failures = parts.flatMap(([part, fs]) => fs.map((f) => `${engine} ${part}: ${f}`))
    for (const [part, fs] of parts) for (const f of fs.slice(0, 5)) console.log(`FAILURE ${engine} ${part}: ${f.slice(0, 600)}`)
    const figures: Record<string, number> = {
      ...(run.figures satisfies HostileFigures),
      failures: failures.length,
      damaged: damage.length,
      relayFailures: relayed.failures.length,
      ...relayed.figures,
      stalledFailures: stalls.failures.length,
      ...stalls.figures,
      sessionFailures: sessions.failures.length,
      ...sessions.figures,
      serverAlive: server.running && side.running ? 1 : 0,
    }
    console.log(`hostile on ${engine}: ${run.figures.requests} requests (seed ${seed}) in ${run.figures.seconds} s, ${run.figures.requestsPerSecond} req/s, ` +
      `${run.figures.status2xx} 2xx, ${run.figures.status4xx} 4xx, ${run.figures.status5xx} 5xx; failures: ${run.failures.length} generated, ` +
      `${damage.length} damage, ${relayed.failures.length} relay, ${stalls.failures.length} stalled, ${sessions.failures.length} sessions; servers alive: ${figures.serverAlive === 1}`)
    return { figures, failures }
  } finally {
    await t.run()
  }
}

function teardowns(): Teardown & { run(): Promise<void> } {
  const fns: (() => unknown)[] = []
  return {
    teardown: (fn) => void fns.push(fn),
    async run() {
      for (const fn of fns.reverse()) await fn()
    },
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchHostile()
  if (r.failures !== 0 || r.damaged !== 0 || r.serverAlive !== 1) process.exitCode = 1
}
