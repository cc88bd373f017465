import { createServer, type ServerResponse } from 'node:http'

/*
 * The control of bench/fanout-cpu.ts, run as a child process with an IPC channel: a bare
 * node:http server that holds every request as an SSE response, with the headers the feed
 * sends, and nothing else. It says `{ port }` once listening. Told `{ frame, framesPerWrite,
 * intervalMs }`, it makes `framesPerWrite.length` writes to every response, one round every
 * `intervalMs`, the i-th carrying `framesPerWrite[i]` copies of `frame` corked together (as the
 * feed writes one subscriber's frames of a commit group), and says `{ written }` when done.
 * Its CPU time is then the cost of those writes alone, read by the parent from /proc.
 */

interface Schedule {
  frame: string
  framesPerWrite: number[]
  intervalMs: number
}

const streams = new Set<ServerResponse>()

const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no', connection: 'keep-alive' })
  res.flushHeaders()
  res.socket?.setNoDelay(true)
  streams.add(res)
  res.once('close', () => streams.delete(res))
})

async function run({ frame, framesPerWrite, intervalMs }: Schedule): Promise<void> {
  const bytes = Buffer.from(frame)
  const started = performance.now()
  for (const [i, frames] of framesPerWrite.entries()) {
    const wait = started + i * intervalMs - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    for (const res of streams) {
      res.cork()
      for (let f = 0; f < frames; f++) res.write(bytes)
      res.uncork()
    }
  }
  process.send!({ written: framesPerWrite.length })
}

process.on('message', (m: Schedule) => void run(m))
// the parent is gone: so is the control
process.on('disconnect', () => process.exit(0))
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  process.send!({ port: typeof address === 'object' && address !== null ? address.port : 0 })
})
