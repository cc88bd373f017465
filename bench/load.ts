import { Agent, request } from 'node:http'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { percentile } from '../test/helpers/event-checks.js'
import { openSse } from '../test/helpers/sse.js'

/** Load shapes shared by the benchmarks that drive `hearth` child processes over HTTP. */

export const CONNECTIONS = 50
export const BODY = Buffer.alloc(1024, 'x')

export interface Load {
  perSec: number
  p99Ms: number
  errors: number
}

/** 50 users, one connection each, spread over `urls`, PUTting 1 KiB files for `ms`. */
export async function putLoad(urls: string[], ms: number): Promise<Load> {
  const users = await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, i) => {
      const c = new HomeserverClient(urls[i % urls.length]!, randomKeypair())
      await c.signup()
      return { url: new URL(c.url), headers: { 'pubky-host': c.user, cookie: `${c.user}=${c.session}`, 'content-length': String(BODY.length) } }
    }),
  )
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS })
  const run = async (window: number) => {
    const end = performance.now() + window
    const latencies: number[] = []
    let errors = 0
    let next = 0
    await Promise.all(users.map(async (u) => {
      while (performance.now() < end) {
        const started = performance.now()
        const status = await put(agent, u.url, `/pub/bench/${(next++).toString(36)}`, u.headers)
        latencies.push(performance.now() - started)
        if (status !== 201) errors++
      }
    }))
    latencies.sort((x, y) => x - y)
    return { perSec: (latencies.length - errors) / (window / 1000), p99Ms: round(percentile(latencies, 0.99)), errors }
  }
  await run(500) // warm every connection
  const load = await run(ms)
  agent.destroy()
  return load
}

function put(agent: Agent, url: URL, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ agent, hostname: url.hostname, port: Number(url.port), path, method: 'PUT', headers }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', () => resolve(0))
    req.end(BODY)
  })
}

/**
 * Writes paced at `rate` per second for `ms`, spread over the servers at `writeTo`; a live
 * `/subscribe` stream on `readAt` stamps each event's arrival.
 */
export async function crossDelivery(writeTo: string[], readAt: string, ms: number, rate: number): Promise<{ rate: number; p50Ms: number; p99Ms: number; missing: number }> {
  const writers = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const c = new HomeserverClient(writeTo[i % writeTo.length]!, randomKeypair())
    await c.signup()
    return c
  }))
  const sent = new Map<string, number>()
  const latencies: number[] = []
  const prefix = `/pub/cross-${rate}/`
  const conn = openSse(`${readAt}/subscribe?filter=*${prefix}*`, {}, (f) => {
    if (f.event !== 'PUT' || f.data === undefined) return
    const ev = JSON.parse(f.data) as { user: string; path: string }
    const at = sent.get(ev.user + ev.path)
    if (at !== undefined) latencies.push(performance.now() - at)
  })
  await conn.response
  const total = Math.round((rate * ms) / 1000)
  const started = performance.now()
  const pending: Promise<unknown>[] = []
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    const w = writers[i % writers.length]!
    const path = `${prefix}${i}`
    sent.set(w.user + path, performance.now())
    pending.push(w.request('PUT', path, 'x').then((r) => r.arrayBuffer()))
  }
  await Promise.all(pending)
  const deadline = performance.now() + 5000
  while (latencies.length < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  conn.close()
  latencies.sort((x, y) => x - y)
  return { rate, p50Ms: round(percentile(latencies, 0.5)), p99Ms: round(percentile(latencies, 0.99)), missing: total - latencies.length }
}


export const round = (n: number) => Math.round(n * 100) / 100
