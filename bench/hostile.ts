import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ChildServer } from '../test/helpers/child-server.js'
import { hostileWorld, runHostile, type HostileFigures } from '../test/helpers/hostile-run.js'
import { fuzzSeed } from '../test/helpers/hostile-corpus.js'

export const description = 'generated hostile requests against `hearth serve`: no 5xx, no crash, no /priv/ leak, the error shapes, no damage to stored data'
export const goals = { failures: '== 0', status5xx: '== 0', damaged: '== 0', serverAlive: '== 1' }

/**
 * Hostile input, long mode: 100,000 generated requests (HOSTILE_REQUESTS overrides) against
 * `hearth serve` in its own process, 32 at a time. `failures` must be 0 and the process must
 * still be running at the end; `requestsPerSecond` is the rate at which the server refused or
 * served them (request generation, on the client side, is included).
 */
export async function benchHostile(requests = Number(process.env.HOSTILE_REQUESTS ?? 100_000)): Promise<HostileFigures & { damaged: number; serverAlive: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-hostile-'))
  const password = 'bench password'
  const server = await ChildServer.start({ dataDir, env: { ADMIN_PASSWORD: password, MAX_STREAMS_PER_IP: '100000' } })
  try {
    const world = await hostileWorld(server.url, password)
    const seed = fuzzSeed()
    const { figures, failures } = await runHostile(server.url, world, { requests, seed, concurrency: 32, batch: 1000 })
    const damage = await world.damage()
    for (const f of [...failures, ...damage].slice(0, 20)) console.log(`FAILURE ${f}`)
    const result = { ...figures, damaged: damage.length, serverAlive: server.running ? 1 : 0 }
    console.log(`hostile: ${result.requests} requests (seed ${seed}) in ${result.seconds} s, ${result.requestsPerSecond} req/s, ` +
      `${result.status2xx} 2xx, ${result.status4xx} 4xx, ${result.status5xx} 5xx, ${result.failures} failures, server alive: ${result.serverAlive === 1}`)
    return result
  } finally {
    await server.kill()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchHostile()
  if (r.failures > 0 || r.damaged > 0 || r.serverAlive !== 1) process.exitCode = 1
}
