import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { randomKeypair } from '../src/auth/keys.js'
import { buildConfig } from '../src/config/config.js'
import { startServer } from '../src/server.js'
import { CLI_NODE_FLAGS } from '../test/helpers/cli.js'
import { stopForked } from './forked-child.js'

/**
 * Memory per idle subscriber: the server (a child process of this one, with `--expose-gc`, so
 * the client's own sockets do not count) is measured after a full GC, before and while 10,000
 * `/subscribe` streams with distinct filters sit open, and again after they close. Figures are
 * the growth divided by the number of streams: of V8's heap plus off-heap buffers, and of RSS.
 */
export const description = 'Server memory per open, idle /subscribe stream (each with its own filter), at 10,000 streams.'
export const goals = { heapPerStreamKb: '<= 20', rssPerStreamKb: '<= 20' }

interface Memory {
  rss: number
  heapUsed: number
  external: number
  streams: number
}

export async function benchIdleMemory(): Promise<Record<string, number>> {
  const streams = process.env.BENCH_QUICK === '1' ? 2000 : 10_000
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-idle-'))
  const child = fork(fileURLToPath(import.meta.url), ['--serve', dataDir, String(streams * 2)], {
    execArgv: ['--expose-gc', ...CLI_NODE_FLAGS],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const sockets: Socket[] = []
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { url: string }).url))
      child.once('exit', (code) => reject(new Error(`the server child exited with ${code}`)))
    })
    const { port } = new URL(url)
    const user = randomKeypair().z32
    const open = (i: number) => openStream(Number(port), `/subscribe?filter=${user}/pub/app/${i}/*`)
    // warm up: the code paths of opening and closing a stream, compiled and their pools sized
    for (const s of await Promise.all(Array.from({ length: 200 }, (_, i) => open(i)))) s.destroy()
    await until(child, (m) => m.streams === 0)
    const before = await memory(child)
    for (let i = 0; i < streams; i += 250) {
      sockets.push(...(await Promise.all(Array.from({ length: Math.min(250, streams - i) }, (_, j) => open(i + j)))))
    }
    await until(child, (m) => m.streams === streams)
    await new Promise((r) => setTimeout(r, 2000))
    const during = await memory(child)
    for (const s of sockets.splice(0)) s.destroy()
    await until(child, (m) => m.streams === 0)
    const after = await memory(child)

    const kb = (bytes: number) => Math.round((bytes / streams / 1024) * 10) / 10
    const heap = (m: Memory) => m.heapUsed + m.external
    const figures = {
      streams,
      heapPerStreamKb: kb(heap(during) - heap(before)),
      rssPerStreamKb: kb(during.rss - before.rss),
      heapBeforeMb: mb(heap(before)),
      heapOpenMb: mb(heap(during)),
      heapAfterCloseMb: mb(heap(after)),
      rssBeforeMb: mb(before.rss),
      rssOpenMb: mb(during.rss),
      rssAfterCloseMb: mb(after.rss),
    }
    console.log(`idle-memory: ${streams.toLocaleString('en')} open /subscribe streams, server in a child process`)
    console.log(`  heap + buffers: ${figures.heapBeforeMb} → ${figures.heapOpenMb} MB (${figures.heapPerStreamKb} KB per stream, goal ≤ 20), ${figures.heapAfterCloseMb} MB after they closed`)
    console.log(`  RSS:            ${figures.rssBeforeMb} → ${figures.rssOpenMb} MB (${figures.rssPerStreamKb} KB per stream), ${figures.rssAfterCloseMb} MB after they closed`)
    return figures
  } finally {
    for (const s of sockets) s.destroy()
    await stopForked(child)
    rmSync(dataDir, { recursive: true, force: true })
  }
}

/** Opens one stream by hand and resolves once its first frame (`retry:`) has arrived. */
function openStream(port: number, path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`))
    let head = ''
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1')
      if (!head.includes('retry: 2000')) return
      socket.off('data', onData)
      if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(head.split('\r\n')[0]))
      socket.resume() // keep reading keepalives, so nothing piles up on the server's side
      resolve(socket)
    }
    socket.on('data', onData)
    socket.on('error', reject)
  })
}

function memory(child: ChildProcess): Promise<Memory> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Memory))
    child.send('memory')
  })
}

async function until(child: ChildProcess, done: (m: Memory) => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (done(await memory(child))) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('the server did not reach the expected number of streams')
}

/** The child: the real server, answering `memory` after a full GC. */
async function serve(dataDir: string, maxStreams: string): Promise<void> {
  const config = buildConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', MAX_STREAMS_PER_IP: maxStreams })
  const server = await startServer(config)
  const gc = (globalThis as { gc?: () => void }).gc!
  process.on('message', async (m) => {
    if (m === 'stop') {
      await server.close()
      process.exit(0)
    }
    gc()
    const { rss, heapUsed, external } = process.memoryUsage()
    process.send!({ rss, heapUsed, external, streams: server.ctx.feed.size })
  })
  process.send!({ url: server.url })
}

const mb = (bytes: number) => Math.round(bytes / 1048576)

const main = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href
if (main && process.argv[2] === '--serve') await serve(process.argv[3]!, process.argv[4]!)
else if (main) await benchIdleMemory()
