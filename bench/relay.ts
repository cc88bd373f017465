import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { ChildServer } from '../test/helpers/child-server.js'
import { headOf } from '../test/helpers/server.js'
import { pinnedAt } from '../test/helpers/relay.js'
import { crossDelivery, putLoad, round } from './load.js'

/**
 * `hearth relay` against the homeserver it relays, on this machine, in one run:
 *   - the homeserver's own durable PUT rate (50 connections, 1 KiB bodies), the reference;
 *   - ingest: three homeservers, each holding a backlog, and a relay started empty that
 *     follows them: events per second until its cursors reach the three heads, and the
 *     relay's CPU per relayed event (from /proc);
 *   - origin write → relay subscriber latency, writes paced at 1,000/s spread over the three.
 * Every server is a child process on LevelDB; the load generator is this process.
 */
export const description = "Relay ingest from three homeservers (events/s, CPU per event) against one homeserver's durable PUT rate, and write → relay subscriber latency at 1,000 writes/s across the three."
export const goals = { ingestRatio: '>= 0.5', latencyP99Ms: '< 100', missing: '== 0' }

export async function benchRelay(): Promise<Record<string, number | string>> {
  const quick = process.env.BENCH_QUICK === '1'
  const backlog = quick ? 2000 : 10_000
  const dirs: string[] = []
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'hearth-bench-relay-'))
    dirs.push(d)
    return d
  }
  const servers: ChildServer[] = []
  const start = async (opts: Parameters<typeof ChildServer.start>[0]) => {
    const s = await ChildServer.start(opts)
    servers.push(s)
    return s
  }
  try {
    const env = { SIGNUP_RATE_LIMIT: '1000000' }
    const hs = await Promise.all([0, 1, 2].map(() => start({ dataDir: dir(), env })))
    const reference = await putLoad([hs[0]!.url], quick ? 1500 : 4000)

    // a backlog on each homeserver, written before the relay exists
    await Promise.all(hs.map(async (s) => {
      const users = await Promise.all(Array.from({ length: 10 }, async () => {
        const c = new HomeserverClient(s.url, randomKeypair())
        await c.signup()
        return c
      }))
      let next = 0
      await Promise.all(users.map(async (u) => {
        while (next < backlog) await u.put(`/pub/backlog/${next++}`, 'x')
      }))
    }))
    const heads = await Promise.all(hs.map((s) => headOf(s.url)))
    const total = heads.reduce((a, b) => a + b, 0)

    // each homeserver pinned to its key: the relay follows no URL on its word alone
    const upstreams = await Promise.all(hs.map((s) => pinnedAt(s.url)))
    const relay = await start({ command: 'relay', dataDir: dir(), env: { ...env, RELAY_UPSTREAMS: upstreams.join(',') } })
    const started = performance.now()
    const cpuBefore = relay.cpuMs()
    const at = await headOf(relay.url)
    while ((await headOf(relay.url)) < total) await new Promise((r) => setTimeout(r, 20))
    const seconds = (performance.now() - started) / 1000
    const ingested = total - at
    const ingestPerSec = ingested / seconds
    const cpuUsPerEvent = ((relay.cpuMs() - cpuBefore) * 1000) / ingested

    const window = quick ? 2000 : 5000
    const latency = await crossDelivery(hs.map((s) => s.url), relay.url, window, 1000)
    // below what the homeservers commit here, so the figures are delivery, not a queue; and
    // the same writes read on their homeserver, for what the relay adds
    const low = await crossDelivery(hs.map((s) => s.url), relay.url, window, 200)
    const direct = await crossDelivery([hs[0]!.url], hs[0]!.url, window, 200)
    const ingestRatio = round(ingestPerSec / reference.perSec)
    console.log(`relay: three homeservers, ${total} backlog events`)
    console.log(`  homeserver durable PUT:   ${Math.round(reference.perSec)}/s`)
    console.log(`  relay ingest:             ${Math.round(ingestPerSec)} events/s, ratio ${ingestRatio} (goal ≥ 0.5), ${round(cpuUsPerEvent)} µs CPU per event`)
    console.log(`  write → relay subscriber at ${latency.rate}/s: p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms (goal < 100), ${latency.missing} missing`)
    console.log(`  write → relay subscriber at ${low.rate}/s: p50 ${low.p50Ms} ms, p99 ${low.p99Ms} ms; on the homeserver itself: p50 ${direct.p50Ms} ms, p99 ${direct.p99Ms} ms`)
    return {
      homeserverPutsPerSec: Math.round(reference.perSec),
      ingestEventsPerSec: Math.round(ingestPerSec),
      ingestRatio,
      relayCpuUsPerEvent: round(cpuUsPerEvent),
      backlogEvents: total,
      latencyWritesPerSec: latency.rate,
      latencyP50Ms: latency.p50Ms,
      latencyP99Ms: latency.p99Ms,
      missing: latency.missing + low.missing + direct.missing,
      lowWritesPerSec: low.rate,
      lowP50Ms: low.p50Ms,
      lowP99Ms: low.p99Ms,
      directP50Ms: direct.p50Ms,
      directP99Ms: direct.p99Ms,
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
}

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (main) console.log(await benchRelay())
