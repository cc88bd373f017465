import net from 'node:net'
import { randomKeypair } from '../../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { statusOf } from './raw-http.js'
import type { ChildServer } from './child-server.js'
import { until } from './until.js'

/** How an upload stops: after a MiB of 8 (streaming to a blob), inside a small body, before any byte, or in a chunk. */
const KINDS = ['large', 'small', 'headers', 'chunked'] as const
type Kind = (typeof KINDS)[number]

const MiB = 1024 * 1024

/**
 * Uploads that stop mid-body, against a server with a short BODY_IDLE_MS, in waves of
 * `perWave` across four users: each must be cut (an error status or a closed connection,
 * never a 2xx) within `BODY_IDLE_MS` plus `cutMs`; nothing of it may be stored (GET 404, and no
 * listing of the folder); once a wave is cut, each user's next large upload goes through (its
 * slot came back); and the server's resident memory may grow by at most `rssBound` bytes over
 * what it held before the first wave.
 */
export async function stalledUploads(server: ChildServer, opts: { waves: number; perWave: number; bodyIdleMs: number; rssBound: number; cutMs?: number }): Promise<{ failures: string[]; figures: Record<string, number> }> {
  const failures: string[] = []
  const users = await Promise.all(Array.from({ length: 4 }, async () => {
    const c = new HomeserverClient(server.url, randomKeypair())
    await c.signup()
    return c
  }))
  const before = server.rss()
  let peak = before
  const sampler = setInterval(() => {
    if (server.running) peak = Math.max(peak, server.rss())
  }, 100)
  const statuses = new Map<string, number>()
  let stalled = 0
  try {
    for (let wave = 0; wave < opts.waves; wave++) {
      // fresh sessions for each wave: the server may have a short SESSION_TTL as well
      await Promise.all(users.map((u) => u.signin()))
      const uploads = Array.from({ length: opts.perWave }, (_, i) => ({ user: users[i % users.length]!, kind: KINDS[i % KINDS.length]!, path: `/pub/stall/${wave}/${i}` }))
      const cut = await Promise.all(uploads.map((u) => stall(server.url, u.user, u.path, u.kind, opts.bodyIdleMs + (opts.cutMs ?? 60_000))))
      for (const [i, answer] of cut.entries()) {
        const u = uploads[i]!
        stalled++
        const key = typeof answer === 'number' ? String(answer) : answer
        statuses.set(key, (statuses.get(key) ?? 0) + 1)
        if (answer === 'open') failures.push(`a ${u.kind} upload stalled at ${u.path} was not cut within ${opts.bodyIdleMs + (opts.cutMs ?? 60_000)} ms`)
        else if (typeof answer === 'number' && (answer < 400 || (answer >= 500 && answer !== 503))) failures.push(`a ${u.kind} upload stalled at ${u.path} was answered ${answer}`)
        const res = await fetch(`${server.url}${u.path}`, { headers: { 'pubky-host': u.user.user } })
        await res.arrayBuffer()
        if (res.status !== 404) failures.push(`a ${u.kind} upload stalled at ${u.path} then reads ${res.status}`)
      }
      // the slots of the cut uploads come back: every user's next streaming upload is taken
      let refused: string[] = []
      await until(async () => {
        await Promise.all(users.map((u) => u.signin()))
        const puts = await Promise.all(users.map((u) => u.request('PUT', `/pub/after/${wave}`, Buffer.alloc(100_000)).then(async (r) => `${r.status} ${await r.text()}`)))
        refused = puts.filter((s) => !s.startsWith('201'))
        return refused.length === 0
      }, `every user's upload to be taken after wave ${wave}`, 60_000, () => refused).catch((err: Error) => failures.push(err.message))
    }
    for (const u of users) {
      await u.signin()
      const listed = await u.list('/pub/stall/', 'limit=1000').catch((err: Error) => [err.message])
      if (listed.length > 0) failures.push(`${u.user.slice(0, 8)}'s /pub/stall/ lists ${listed.slice(0, 3).join(' ')}`)
    }
  } finally {
    clearInterval(sampler)
  }
  if ((statuses.get('408') ?? 0) === 0) failures.push(`no stalled upload was cut with 408 (${JSON.stringify([...statuses])}): the checks proved nothing`)
  const after = server.rss()
  const growth = Math.max(peak, after) - before
  if (growth > opts.rssBound) failures.push(`the server grew by ${Math.round(growth / MiB)} MiB during the stalled uploads (bound ${Math.round(opts.rssBound / MiB)} MiB)`)
  return {
    failures,
    figures: { stalledUploads: stalled, stalledCut408: statuses.get('408') ?? 0, stalledRssGrowthMiB: Math.round(growth / MiB) },
  }
}

/**
 * One PUT on a raw socket that sends part of its body and then nothing. Resolves with the
 * status the server answered, `closed` when it closed the connection without an answer, or
 * `open` when neither happened within `ms`.
 */
function stall(base: string, user: HomeserverClient, path: string, kind: Kind, ms: number): Promise<number | 'closed' | 'open'> {
  const { hostname, port } = new URL(base)
  const headers = [`PUT ${path} HTTP/1.1`, `Host: ${hostname}:${port}`, ...Object.entries(user.headers()).map(([k, v]) => `${k}: ${v}`)]
  const length = kind === 'large' ? 8 * MiB : 32 * 1024
  headers.push(kind === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`)
  const head = Buffer.from(`${headers.join('\r\n')}\r\n\r\n`)
  const body = kind === 'large' ? Buffer.alloc(MiB, 1) : kind === 'small' ? Buffer.alloc(10_000, 1) : kind === 'chunked' ? Buffer.from(`8000\r\n${'x'.repeat(5000)}`) : Buffer.alloc(0)
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname)
    const got: Buffer[] = []
    const timer = setTimeout(() => finish('open'), ms)
    function finish(answer: number | 'closed' | 'open') {
      clearTimeout(timer)
      socket.destroy()
      resolve(answer)
    }
    socket.on('connect', () => socket.write(Buffer.concat([head, body])))
    socket.on('data', (chunk: Buffer) => {
      got.push(chunk)
      const raw = Buffer.concat(got)
      if (raw.includes('\r\n\r\n')) finish(statusOf(raw))
    })
    socket.on('error', () => finish(got.length > 0 ? statusOf(Buffer.concat(got)) : 'closed'))
    socket.on('close', () => finish(got.length > 0 ? statusOf(Buffer.concat(got)) : 'closed'))
  })
}
