import { createReadStream, mkdtempSync, rmSync } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { ChildServer } from '../test/helpers/child-server.js'
import { CpuProfiler } from './cpu-profile.js'
import { round } from './load.js'
import type { ProfileSummary } from './report.js'

/**
 * One large file against the disk under it, side by side in one run: a 90 MiB PUT to
 * `hearth serve` (LevelDB, a child process) against writing the same bytes to a file in the
 * same folder with an fsync; a GET of it against reading that file back. Both sides run warm
 * (the page cache holds what was just written), as a homeserver's hot files are. The server's
 * peak RSS growth during each is sampled from /proc. The PUT (of the same bytes again) and the
 * GET then run once more, each under the CPU profiler.
 */
export const description = 'A 90 MiB PUT and GET against writing (with fsync) and reading the same bytes on the same disk; peak server RSS growth.'
export const goals = { putRatio: '>= 0.25', getRatio: '>= 0.5', putPeakRssMb: '< 100' }
export let profiles: ProfileSummary[] = []

const SIZE = 90 * 1024 * 1024
const CHUNK = 1024 * 1024

export async function benchLargefile(): Promise<Record<string, number | string>> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-bench-large-'))
  const profiler = new CpuProfiler()
  const server = await ChildServer.start({ dataDir: join(dir, 'data'), env: profiler.env })
  try {
    const body = Buffer.alloc(SIZE)
    for (let i = 0; i < SIZE; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i) // not compressible, not all zero
    const file = join(dir, 'plain.bin')

    let t0 = performance.now()
    const fh = await open(file, 'w')
    for (let i = 0; i < SIZE; i += CHUNK) await fh.write(body, i, Math.min(CHUNK, SIZE - i))
    await fh.sync()
    await fh.close()
    const diskWriteMiBs = SIZE / 2 ** 20 / ((performance.now() - t0) / 1000)

    t0 = performance.now()
    await readFile(file)
    const diskReadMiBs = SIZE / 2 ** 20 / ((performance.now() - t0) / 1000)

    const user = new HomeserverClient(server.url, randomKeypair())
    await user.signup()
    const put = await sampled(server, async () => {
      const status = await send(server.url, 'PUT', user, createReadStream(file, { highWaterMark: CHUNK }))
      if (status !== 201) throw new Error(`PUT answered ${status}`)
    })
    const get = await sampled(server, async () => {
      const status = await send(server.url, 'GET', user)
      if (status !== 200) throw new Error(`GET answered ${status}`)
    })
    profiles = [
      (await profiler.window(server.pid!, `a PUT of the ${SIZE / 2 ** 20} MiB`, () => send(server.url, 'PUT', user, createReadStream(file, { highWaterMark: CHUNK })))).profile,
      (await profiler.window(server.pid!, `a GET of the ${SIZE / 2 ** 20} MiB`, () => send(server.url, 'GET', user))).profile,
    ]
    const putMiBs = SIZE / 2 ** 20 / (put.ms / 1000)
    const getMiBs = SIZE / 2 ** 20 / (get.ms / 1000)
    console.log(`largefile: ${SIZE / 2 ** 20} MiB`)
    console.log(`  disk write + fsync: ${Math.round(diskWriteMiBs)} MiB/s   PUT: ${Math.round(putMiBs)} MiB/s   ratio ${round(putMiBs / diskWriteMiBs)} (goal ≥ 0.25), server RSS +${put.peakMb} MB`)
    console.log(`  disk read:          ${Math.round(diskReadMiBs)} MiB/s   GET: ${Math.round(getMiBs)} MiB/s   ratio ${round(getMiBs / diskReadMiBs)} (goal ≥ 0.5), server RSS +${get.peakMb} MB`)
    return {
      diskWriteMiBs: Math.round(diskWriteMiBs),
      putMiBs: Math.round(putMiBs),
      putRatio: round(putMiBs / diskWriteMiBs),
      putPeakRssMb: put.peakMb,
      diskReadMiBs: Math.round(diskReadMiBs),
      getMiBs: Math.round(getMiBs),
      getRatio: round(getMiBs / diskReadMiBs),
      getPeakRssMb: get.peakMb,
    }
  } finally {
    await server.stop()
    profiler.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Runs `work`, sampling the server's RSS every 20 ms: how long it took and the peak growth. */
async function sampled(server: ChildServer, work: () => Promise<void>): Promise<{ ms: number; peakMb: number }> {
  const before = server.rss()
  let peak = before
  const timer = setInterval(() => (peak = Math.max(peak, server.rss())), 20)
  const t0 = performance.now()
  try {
    await work()
    return { ms: performance.now() - t0, peakMb: round((Math.max(peak, server.rss()) - before) / 2 ** 20) }
  } finally {
    clearInterval(timer)
  }
}

/** One request for `/pub/large.bin`, streaming `body` up or the answer down (and away). */
function send(url: string, method: 'PUT' | 'GET', user: HomeserverClient, body?: NodeJS.ReadableStream): Promise<number> {
  const u = new URL(url)
  const headers = user.headers(method === 'PUT' ? { 'content-length': String(SIZE) } : {})
  return new Promise((resolve, reject) => {
    const req = request({ hostname: u.hostname, port: Number(u.port), path: '/pub/large.bin', method, headers }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    if (body === undefined) req.end()
    else body.pipe(req)
  })
}

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (main) console.log(await benchLargefile())
