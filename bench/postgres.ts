import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { EventLog } from '../src/events/event-log.js'
import { Writer } from '../src/events/writer.js'
import { openPostgresStore } from '../src/kv/postgres/store.js'
import { ChildServer } from '../test/helpers/child-server.js'
import { freshDatabase } from '../test/helpers/postgres.js'
import { BODY, CONNECTIONS, crossDelivery, putLoad, round } from './load.js'

/**
 * The PostgreSQL engine side by side with LevelDB, in one run:
 *   - durable 1 KiB PUTs from 50 keep-alive connections: `hearth serve` on LevelDB, on
 *     PostgreSQL with one instance, and with two instances on one database (connections split
 *     between them); every server is a child process, the load generator is this one;
 *   - write on instance A → delivery to a `/subscribe` stream on instance B, at 1,000 writes/s
 *     (the goal's rate) and at 200 writes/s (below what one instance commits here);
 *   - how long a commit group holds the head row's lock, and the write ceiling that implies:
 *     groups are serialised by that lock across every instance, so at most 1000 ÷ hold-ms
 *     groups commit per second, each of the measured mean size.
 */
export const description = 'PostgreSQL vs LevelDB: durable PUT throughput (1 and 2 instances), A→B delivery latency at 1,000 writes/s, commit-lock hold time and the write ceiling it implies.'
export const goals = { pgOneRatio: '>= 0.5', crossP99Ms: '< 100', crossMissing: '== 0', errors: '== 0' }


interface Teardowns {
  teardown(fn: () => unknown): void
  run(): Promise<void>
}

function teardowns(): Teardowns {
  const fns: (() => unknown)[] = []
  return {
    teardown: (fn) => void fns.push(fn),
    async run() {
      for (const fn of fns.reverse()) await fn()
    },
  }
}

export async function benchPostgres(): Promise<Record<string, number | string>> {
  const quick = process.env.BENCH_QUICK === '1'
  const windowMs = quick ? 1500 : 4000
  const t = teardowns()
  const dirs: string[] = []
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'hearth-bench-pg-'))
    dirs.push(d)
    return d
  }
  try {
    const level = await ChildServer.start({ dataDir: dir(), env: { SIGNUP_RATE_LIMIT: '1000000' } })
    t.teardown(() => level.stop())
    const levelPut = await putLoad([level.url], windowMs)
    await level.stop()

    const url = await freshDatabase(t)
    const env = { DATABASE_URL: url, SIGNUP_RATE_LIMIT: '1000000' }
    const a = await ChildServer.start({ dataDir: dir(), env })
    t.teardown(() => a.stop())
    const pgOne = await putLoad([a.url], windowMs)
    const b = await ChildServer.start({ dataDir: dir(), env })
    t.teardown(() => b.stop())
    const pgTwo = await putLoad([a.url, b.url], windowMs)
    const cross = await crossDelivery([a.url], b.url, quick ? 1000 : 3000, 1000)
    // below what one instance commits per second here, so the figure is delivery, not a queue
    const crossLow = await crossDelivery([a.url], b.url, quick ? 1000 : 3000, 200)
    await a.stop()
    await b.stop()

    const lock = await lockHold(await freshDatabase(t), windowMs)
    const pgOneRatio = round(pgOne.perSec / levelPut.perSec)
    console.log(`postgres: ${CONNECTIONS} connections, 1 KiB bodies, ${windowMs} ms windows`)
    console.log(`  LevelDB:                 ${Math.round(levelPut.perSec)} PUT/s (p99 ${levelPut.p99Ms} ms)`)
    console.log(`  PostgreSQL, 1 instance:  ${Math.round(pgOne.perSec)} PUT/s (p99 ${pgOne.p99Ms} ms), ratio ${pgOneRatio} (goal ≥ 0.5)`)
    console.log(`  PostgreSQL, 2 instances: ${Math.round(pgTwo.perSec)} PUT/s (p99 ${pgTwo.p99Ms} ms)`)
    console.log(`  A → B delivery at ${cross.rate}/s: p50 ${cross.p50Ms} ms, p99 ${cross.p99Ms} ms (goal < 100), ${cross.missing} missing`)
    console.log(`  A → B delivery at ${crossLow.rate}/s: p50 ${crossLow.p50Ms} ms, p99 ${crossLow.p99Ms} ms, ${crossLow.missing} missing`)
    console.log(`  lock held per group: mean ${lock.meanMs} ms, max ${lock.maxMs} ms, mean group ${lock.groupSize} writes → ceiling ${lock.ceiling} writes/s`)
    return {
      levelPutsPerSec: Math.round(levelPut.perSec),
      pgOnePutsPerSec: Math.round(pgOne.perSec),
      pgTwoPutsPerSec: Math.round(pgTwo.perSec),
      pgOneRatio,
      pgTwoRatio: round(pgTwo.perSec / levelPut.perSec),
      errors: levelPut.errors + pgOne.errors + pgTwo.errors,
      crossWritesPerSec: cross.rate,
      crossP50Ms: cross.p50Ms,
      crossP99Ms: cross.p99Ms,
      crossMissing: cross.missing + crossLow.missing,
      crossLowWritesPerSec: crossLow.rate,
      crossLowP50Ms: crossLow.p50Ms,
      crossLowP99Ms: crossLow.p99Ms,
      lockHoldMeanMs: lock.meanMs,
      lockHoldMaxMs: lock.maxMs,
      lockGroupSize: lock.groupSize,
      lockGroupsPerSec: lock.groupsPerSec,
      writeCeilingPerSec: lock.ceiling,
    }
  } finally {
    await t.run()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
}

/**
 * The writer on PostgreSQL in this process, fed by 50 concurrent submitters for `ms`: the
 * store's own count of how long each group held the head row's lock.
 */
async function lockHold(url: string, ms: number): Promise<{ meanMs: number; maxMs: number; groupSize: number; groupsPerSec: number; ceiling: number }> {
  const store = await openPostgresStore(url)
  try {
    const events = await EventLog.open(store)
    const writer = new Writer(store, events, 1024 ** 4)
    const users = Array.from({ length: CONNECTIONS }, () => randomKeypair().z32)
    for (const u of users) await store.createUser(u, Date.now())
    const before = store.lockStats
    const end = performance.now() + ms
    let writes = 0
    await Promise.all(users.map(async (user) => {
      for (let i = 0; performance.now() < end; i++) {
        await writer.submit({ type: 'PUT', user, path: `/pub/lock/${i}`, content: { size: 1024, hash: 'x', type: 'application/octet-stream', inline: BODY } })
        writes++
      }
    }))
    const after = store.lockStats
    events.close()
    const groups = after.groups - before.groups
    const meanMs = (after.totalMs - before.totalMs) / groups
    const groupSize = writes / groups
    return { meanMs: round(meanMs), maxMs: round(after.maxMs), groupSize: round(groupSize), groupsPerSec: round(groups / (ms / 1000)), ceiling: Math.round((1000 / meanMs) * groupSize) }
  } finally {
    await store.close()
  }
}


const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (main) console.log(await benchPostgres())
