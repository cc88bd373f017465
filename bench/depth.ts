import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { MAX_PATH_BYTES, MAX_SEGMENTS } from '../src/paths.js'
import { ChildServer } from '../test/helpers/child-server.js'
import { InfoProbe } from '../test/helpers/info-probe.js'

/**
 * What depth costs a PUT (SPEC §2: a PUT's cost does not grow with its depth within the
 * 64-segment bound). `hearth serve` runs on LevelDB as a child process; 50 connections PUT small
 * files whose paths all have the same length, 256 bytes, in 2 to 64 segments, so what changes
 * is the depth and nothing else. The figure is the server's CPU time per PUT (from /proc),
 * which does not depend on how fast the load generator sends.
 *
 * Two shapes: every file in a chain of folders of its own (`newChainCpuUs@<depth>`: each folder
 * above it is new, the most a PUT asks of the clash check and the folder index), and files
 * added to one folder that already exists (`sameFolderCpuUs@<depth>`). `longestCpuUs` is the
 * hardening review's case: 64 segments of 63 bytes, each in a chain of its own.
 *
 * `infoMaxMsDeepest` is how long /info can take to answer while 500 PUTs of that case arrive at
 * once (the slowest answer, asked one after another from a process of its own), next to
 * `infoMaxMsShallow` for 500 PUTs at a 2-segment path: what a burst of the deepest PUTs does to
 * everyone else, and what any burst of that size does on this machine.
 */
export const description = 'Server CPU per PUT at 2 to 64 segments, paths of one length (256 bytes): in new chains of folders and in one existing folder; `depthRatio` = 64 ÷ 2 segments, new chains.'
export const goals = { depthRatio: '<= 1.5', infoMaxMsDeepest: '< 100', errors: '== 0' }
export const chart = { title: 'Server CPU per PUT against path depth (256-byte paths)', x: 'segments', y: 'CPU per PUT (µs)' }

const CONNECTIONS = 50
const PATH_BYTES = 256
const DEPTHS = [2, 8, 16, 32, MAX_SEGMENTS]
const BODY = 'depth'
/** PUTs sent at once while /info is probed */
const BURST = 500

/** A path of `segments` segments and `bytes` bytes whose first segment starts with `id`. */
export function pathOf(segments: number, bytes: number, id: string): string {
  const below = segments - 1 // after the root, `/pub`
  const each = Math.floor((bytes - '/pub'.length - below) / below)
  const parts = Array.from({ length: below }, () => 'd'.repeat(each))
  parts[0] = id + parts[0]!.slice(id.length)
  parts[below - 1] += 'd'.repeat(bytes - '/pub'.length - below * (each + 1))
  const path = `/pub/${parts.join('/')}`
  if (path.length !== bytes || path.split('/').length - 1 !== segments) throw new Error(`no ${segments}-segment path of ${bytes} bytes`)
  return path
}

interface Run {
  cpuUs: number
  errors: number
}

export async function benchDepth(): Promise<Record<string, number>> {
  const quick = process.env.BENCH_QUICK === '1'
  const puts = quick ? 1000 : 4000
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-depth-'))
  const server = await ChildServer.start({ dataDir })
  try {
    /** `puts` PUTs from fresh users, the nth at `path(n)`; the server's CPU per PUT. */
    const run = async (path: (n: number) => string): Promise<Run> => {
      const clients = await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
        const c = new HomeserverClient(server.url, randomKeypair())
        await c.signup()
        return c
      }))
      const before = server.cpuMs()
      let next = 0
      let errors = 0
      await Promise.all(clients.map(async (c) => {
        while (next < puts) {
          const res = await c.request('PUT', path(next++), BODY)
          await res.arrayBuffer()
          if (res.status !== 201) errors++
        }
      }))
      return { cpuUs: Math.round(((server.cpuMs() - before) * 1000) / puts), errors }
    }
    const id = (n: number) => n.toString(36).padStart(3, '0')

    await run((n) => pathOf(2, PATH_BYTES, id(n))) // warm up: compile the code paths
    const figures: Record<string, number> = {}
    let errors = 0
    for (const depth of DEPTHS) {
      const chains = await run((n) => pathOf(depth, PATH_BYTES, id(n)))
      const folder = pathOf(depth, PATH_BYTES, 'one').replace(/\/[^/]*$/, '')
      const same = await run((n) => `${folder}/${id(n)}`)
      figures[`newChainCpuUs@${depth}`] = chains.cpuUs
      figures[`sameFolderCpuUs@${depth}`] = same.cpuUs
      errors += chains.errors + same.errors
    }
    const longest = await run((n) => pathOf(MAX_SEGMENTS, 64 * MAX_SEGMENTS - 1, id(n)))
    if (64 * MAX_SEGMENTS - 1 > MAX_PATH_BYTES) throw new Error('the longest path is past the path bound')
    errors += longest.errors
    const burstUser = new HomeserverClient(server.url, randomKeypair())
    await burstUser.signup()
    /** the slowest /info answer while `BURST` PUTs at `path(n)` arrive at once */
    const infoUnderBurst = async (path: (n: number) => string): Promise<number> => {
      const probe = await InfoProbe.start(server.url)
      const puts = Promise.all(Array.from({ length: BURST }, async (_, n) => {
        const res = await burstUser.request('PUT', path(n), BODY)
        await res.arrayBuffer()
        if (res.status !== 201) errors++
      }))
      await puts.catch(() => undefined)
      const probed = await probe.stop()
      await puts
      errors += probed.failures.length
      return probed.maxMs
    }
    figures.infoMaxMsShallow = await infoUnderBurst((n) => `/pub/burst/${id(n)}`)
    figures.infoMaxMsDeepest = await infoUnderBurst((n) => pathOf(MAX_SEGMENTS, 64 * MAX_SEGMENTS - 1, `b${id(n)}`))
    const depthRatio = Math.round((figures[`newChainCpuUs@${MAX_SEGMENTS}`]! / figures['newChainCpuUs@2']!) * 100) / 100
    console.log(`depth: ${puts} PUTs per run from ${CONNECTIONS} connections, ${PATH_BYTES}-byte paths; server CPU per PUT (µs)`)
    for (const depth of DEPTHS) console.log(`  ${String(depth).padStart(2)} segments: new chains ${figures[`newChainCpuUs@${depth}`]}, one folder ${figures[`sameFolderCpuUs@${depth}`]}`)
    console.log(`  64 segments of 63 bytes, new chains: ${longest.cpuUs}`)
    console.log(`  depthRatio (new chains, 64 ÷ 2 segments): ${depthRatio}`)
    console.log(`  /info under ${BURST} concurrent PUTs: slowest ${figures.infoMaxMsDeepest} ms at 64 segments, ${figures.infoMaxMsShallow} ms at 2`)
    return { puts, connections: CONNECTIONS, pathBytes: PATH_BYTES, depthRatio, longestCpuUs: longest.cpuUs, errors, ...figures }
  } finally {
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await benchDepth()
