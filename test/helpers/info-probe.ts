import { fork, type ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

/*
 * Asks a server's /info over and over, one request at a time, from a process of its own, and
 * reports the slowest answer. A probe in the test's own process would measure the test too:
 * its answer waits in the same event loop behind every response of the load the test sends.
 *
 * Run as a child: argv[2] is the server's URL. It sends `{ ready: true }` after its first
 * answer; on any message it finishes the request in flight and sends its `ProbeResult`.
 */

export interface ProbeResult {
  /** the slowest answer, ms */
  maxMs: number
  probes: number
  /** statuses other than 200, or network errors, as text */
  failures: string[]
}

export class InfoProbe {
  readonly #child: ChildProcess
  readonly #result: Promise<ProbeResult>

  private constructor(child: ChildProcess, result: Promise<ProbeResult>) {
    this.#child = child
    this.#result = result
  }

  /** Starts probing `url`; resolves once the first answer came back. */
  static async start(url: string): Promise<InfoProbe> {
    const child = fork(fileURLToPath(import.meta.url), [url], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the /info probe exited (${code})`))))
    exited.catch(() => {})
    const ready = new Promise<void>((resolve) => child.once('message', () => resolve()))
    await Promise.race([ready, exited])
    const result = new Promise<ProbeResult>((resolve) => child.once('message', (m) => resolve(m as ProbeResult)))
    return new InfoProbe(child, Promise.race([result, exited]))
  }

  /** Stops after the request in flight and gives the figures. */
  async stop(): Promise<ProbeResult> {
    this.#child.send('stop')
    try {
      return await this.#result
    } finally {
      this.#child.disconnect()
    }
  }

  kill(): void {
    this.#child.kill('SIGKILL')
  }
}

async function probeLoop(url: string): Promise<void> {
  let stopping = false
  process.on('message', () => {
    stopping = true
  })
  const result: ProbeResult = { maxMs: 0, probes: 0, failures: [] }
  while (!stopping) {
    const t0 = performance.now()
    try {
      const res = await fetch(`${url}/info`)
      await res.arrayBuffer()
      if (res.status !== 200) result.failures.push(`status ${res.status}`)
    } catch (err) {
      result.failures.push(String(err))
    }
    result.maxMs = Math.max(result.maxMs, performance.now() - t0)
    if (result.probes++ === 0) process.send!({ ready: true })
  }
  result.maxMs = Math.round(result.maxMs)
  process.send!(result, () => process.disconnect())
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await probeLoop(process.argv[2]!)
