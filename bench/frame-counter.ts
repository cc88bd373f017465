import net from 'node:net'
import { eventCounter } from './replay.js'

/**
 * A live stream on a raw socket that only counts its `event:` lines: no HTTP parser, no
 * decoding, so ten thousand of them cost this process little. Opened once the response head
 * has come (the server registers the stream before it sends anything). With `timed`, it also
 * keeps when each event came (`performance.now()` of the read that brought it), in order.
 */
export class FrameCounter {
  readonly opened: Promise<void>
  events = 0
  /** with `timed`: the time each event arrived, the n-th event's at [n - 1] */
  readonly arrivals: number[] | undefined
  readonly #socket: net.Socket

  constructor(url: string, target: string, options: { timed?: boolean } = {}) {
    const { hostname, port } = new URL(url)
    const count = eventCounter()
    const arrivals: number[] | undefined = options.timed ? [] : undefined
    this.arrivals = arrivals
    let head: string | undefined = ''
    this.#socket = net.connect(Number(port), hostname)
    this.opened = new Promise((resolve, reject) => {
      this.#socket.on('error', reject)
      this.#socket.on('data', (chunk: Buffer) => {
        if (head !== undefined) {
          head += chunk.toString('latin1')
          const end = head.indexOf('\r\n\r\n')
          if (end === -1) return
          if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(`${target}: ${head.split('\r\n')[0]}`))
          chunk = Buffer.from(head.slice(end + 4), 'latin1')
          head = undefined
          resolve()
        }
        const n = count(chunk)
        this.events += n
        if (arrivals !== undefined && n > 0) {
          const now = performance.now()
          for (let i = 0; i < n; i++) arrivals.push(now)
        }
      })
    })
    this.opened.catch(() => {})
    this.#socket.write(`GET ${target} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`)
  }

  close(): void {
    this.#socket.destroy()
  }
}

/** Opens `n` counters on `target`, 500 at a time, each batch fully open before the next. */
export async function openCounters(url: string, target: string, n: number, options: { timed?: boolean } = {}): Promise<FrameCounter[]> {
  const counters: FrameCounter[] = []
  try {
    for (let i = 0; i < n; i += 500) {
      const batch = Array.from({ length: Math.min(500, n - i) }, () => new FrameCounter(url, target, options))
      counters.push(...batch)
      await Promise.all(batch.map((c) => c.opened))
    }
    return counters
  } catch (err) {
    for (const c of counters) c.close()
    throw err
  }
}

/** Waits until the counters hold `expected` events between them, or `ms` has passed; returns how many they hold. */
export async function countersReach(counters: readonly FrameCounter[], expected: number, ms = 60_000): Promise<number> {
  const delivered = () => counters.reduce((sum, c) => sum + c.events, 0)
  const deadline = Date.now() + ms
  while (delivered() < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  return delivered()
}
