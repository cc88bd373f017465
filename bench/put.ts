import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { buildConfig } from '../src/config/config.js'
import { createContext } from '../src/context.js'
import { createLogger } from '../src/log.js'
import { buildApp } from '../src/server.js'
import { CpuProfiler } from './cpu-profile.js'
import type { ProfileSummary } from './report.js'
import { CLI_NODE_FLAGS } from '../test/helpers/cli.js'
import { stopForked } from './forked-child.js'

/**
 * Durable PUT throughput: 1 KiB files from 50 keep-alive connections (one user each), against
 * the same Fastify app answering a no-op route that drains the body and answers 201.
 *
 * The server runs in a child process, alone on its core, as `hearth serve` would: the load
 * generator here gets the other one, so neither steals the other's event loop. Both routes live
 * in that one child, built by the real `buildApp` (same options, plugins, hooks and streaming
 * body parser), so the ratio is what the homeserver's work costs: auth, hashing and sniffing
 * the body, and a group-committed, fsynced LevelDB batch with its event. Rounds alternate
 * between the two and each keeps its best, so both see the same machine.
 *
 * `*Cpu` figures are the cores each side kept busy in its best window: a load generator near
 * 1.0 would mean the baseline is capped by the client, not by Fastify.
 * Figures named `<series>@<x>` are chart points: PUT latency against concurrent connections.
 * One more window of durable PUTs at 50 connections runs under the CPU profiler.
 */
export const description = 'Durable PUTs of 1 KiB files from 50 keep-alive connections, against a no-op PUT route of the same Fastify app; `ratio` = homeserver ÷ no-op.'
export const goals = { ratio: '>= 0.6', errors: '== 0' }
export const chart = { title: 'Durable PUT latency (1 KiB)', x: 'concurrent connections', y: 'latency (ms)' }
export let profiles: ProfileSummary[] = []

const CONNECTIONS = 50
const BODY = Buffer.alloc(1024, 'x')

export interface Load {
  perSec: number
  p50Ms: number
  p99Ms: number
  errors: number
  /** cores kept busy during the window: tells whether the server or the load generator was the limit */
  serverCpu?: number
  clientCpu?: number
}

export async function benchPut(): Promise<Record<string, number | string>> {
  const quick = process.env.BENCH_QUICK === '1'
  const windowMs = quick ? 1000 : 4000
  const rounds = quick ? 1 : 3
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-put-'))
  const profiler = new CpuProfiler()
  const child = fork(fileURLToPath(import.meta.url), ['--serve', dataDir], { execArgv: [...CLI_NODE_FLAGS], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...profiler.env } })
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { url: string }).url))
      child.once('exit', (code) => reject(new Error(`the server child exited with ${code}`)))
    })
    const users = await Promise.all(Array.from({ length: CONNECTIONS }, () => signedUp(url)))
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS })
    const run = async (route: 'pub' | 'noop', connections: number, ms: number): Promise<Load> => {
      const server = await serverCpuMs(child)
      const client = process.cpuUsage()
      const result = await load(agent, url, route, users.slice(0, connections), ms)
      const used = process.cpuUsage(client)
      const serverCpu = round(((await serverCpuMs(child)) - server) / ms)
      return { ...result, serverCpu, clientCpu: round((used.user + used.system) / 1000 / ms) }
    }

    await run('noop', CONNECTIONS, 500) // warm both paths and every connection
    await run('pub', CONNECTIONS, 500)
    let noop: Load | undefined
    let hs: Load | undefined
    for (let i = 0; i < rounds; i++) {
      const n = await run('noop', CONNECTIONS, windowMs)
      const h = await run('pub', CONNECTIONS, windowMs)
      if (noop === undefined || n.perSec > noop.perSec) noop = n
      if (hs === undefined || h.perSec > hs.perSec) hs = h
    }
    const series: Record<string, number> = {}
    for (const c of [1, 10]) {
      const l = await run('pub', c, quick ? 500 : 2000)
      series[`putP50Ms@${c}`] = l.p50Ms
      series[`putP99Ms@${c}`] = l.p99Ms
    }
    series[`putP50Ms@${CONNECTIONS}`] = hs!.p50Ms
    series[`putP99Ms@${CONNECTIONS}`] = hs!.p99Ms
    profiles = [(await profiler.window(child.pid!, `${windowMs / 1000} s of durable PUTs from ${CONNECTIONS} connections`, () => run('pub', CONNECTIONS, windowMs))).profile]
    agent.destroy()

    const ratio = round(hs!.perSec / noop!.perSec)
    console.log(`put: server in a child process, ${CONNECTIONS} keep-alive connections, 1 KiB bodies, best of ${rounds} × ${windowMs} ms`)
    console.log(`  no-op Fastify PUT:   ${Math.round(noop!.perSec)} req/s`)
    console.log(`  durable homeserver:  ${Math.round(hs!.perSec)} req/s (p50 ${hs!.p50Ms} ms, p99 ${hs!.p99Ms} ms)`)
    console.log(`  ratio:               ${ratio} (goal ≥ 0.6)`)
    console.log(`  cores busy, server/load generator: no-op ${noop!.serverCpu}/${noop!.clientCpu}, homeserver ${hs!.serverCpu}/${hs!.clientCpu}`)
    return {
      server: 'child process',
      connections: CONNECTIONS,
      bodyBytes: BODY.length,
      noopPutsPerSec: Math.round(noop!.perSec),
      homeserverPutsPerSec: Math.round(hs!.perSec),
      ratio,
      errors: noop!.errors + hs!.errors,
      noopServerCpu: noop!.serverCpu!,
      noopClientCpu: noop!.clientCpu!,
      homeserverServerCpu: hs!.serverCpu!,
      homeserverClientCpu: hs!.clientCpu!,
      ...series,
    }
  } finally {
    await stopForked(child)
    profiler.close()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** The child's CPU time so far, in ms, asked over IPC. */
function serverCpuMs(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve((m as { cpuMs: number }).cpuMs))
    child.send('cpu')
  })
}

export async function signedUp(url: string): Promise<{ user: string; cookie: string }> {
  const client = new HomeserverClient(url, randomKeypair())
  await client.signup()
  return { user: client.user, cookie: `${client.user}=${client.session}` }
}

/** Each user's connection PUTs in a loop until the window closes; every answer is timed. */
export async function load(agent: Agent, url: string, route: 'pub' | 'noop', users: { user: string; cookie: string }[], ms: number): Promise<Load> {
  const { hostname, port } = new URL(url)
  const end = performance.now() + ms
  const latencies: number[] = []
  let errors = 0
  let next = 0
  await Promise.all(users.map(async ({ user, cookie }) => {
    const headers = { 'pubky-host': user, cookie, 'content-length': String(BODY.length) }
    while (performance.now() < end) {
      const path = `/${route}/bench/${(next++).toString(36)}`
      const started = performance.now()
      const status = await put(agent, hostname, Number(port), path, headers)
      latencies.push(performance.now() - started)
      if (status !== 201) errors++
    }
  }))
  latencies.sort((a, b) => a - b)
  const at = (q: number) => round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0)
  return { perSec: (latencies.length - errors) / (ms / 1000), p50Ms: at(0.5), p99Ms: at(0.99), errors }
}

function put(agent: Agent, hostname: string, port: number, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ agent, hostname, port, path, method: 'PUT', headers }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', () => resolve(0))
    req.end(BODY)
  })
}

/** The child: the real app, plus the baseline route, on 127.0.0.1. */
async function serve(dataDir: string): Promise<void> {
  const config = buildConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', SIGNUP_RATE_LIMIT: '1000000' })
  const ctx = await createContext(config, createLogger(config.logLevel))
  const app = await buildApp(ctx)
  app.put('/noop/*', async (req, reply) => {
    for await (const _ of req.body as Readable) {
      // drain, as storage does, and keep nothing
    }
    return reply.code(201).send()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  process.on('message', async (m) => {
    if (m === 'cpu') {
      const { user, system } = process.cpuUsage()
      return process.send!({ cpuMs: (user + system) / 1000 })
    }
    await ctx.stopping()
    await app.close()
    await ctx.close()
    process.exit(0)
  })
  process.send!({ url: `http://127.0.0.1:${port}` })
}

const round = (n: number) => Math.round(n * 100) / 100

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (main && process.argv[2] === '--serve') await serve(process.argv[3]!)
else if (main) await benchPut()
