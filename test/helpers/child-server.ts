import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { CLI, CLI_NODE_FLAGS } from './cli.js'
import { until } from './until.js'

/** Output kept for diagnostics when something goes wrong. */
const KEEP_OUTPUT = 64 * 1024
/** USER_HZ: the unit of /proc's CPU times, 100 on every Linux Node runs on */
const CLOCK_TICKS = 100

export interface ChildServerOptions {
  /** DATA_DIR; leave it out only when `args` names the folder with `--data` */
  dataDir?: string
  /** extra settings, e.g. `{ MAX_STREAMS_PER_IP: '3' }` */
  env?: Record<string, string>
  /** how long to wait for the first answer of /info */
  startTimeoutMs?: number
  /**
   * Restarts listen on the port the first start got, so a client that holds the URL (a
   * browser page) finds the new process where the old one was.
   */
  keepPort?: boolean
  /** `serve` (default) or `relay` */
  command?: 'serve' | 'relay'
  /**
   * Flags after the command, as a person types them (`['--data', dir]`). A flag wins over
   * its environment twin, so `--port` here overrides the PORT that `keepPort` sets.
   */
  args?: string[]
  /**
   * The `hearth` to run: by default this checkout's CLI under the test's Node; an installed
   * package's `node_modules/.bin/hearth` to run what a user gets.
   */
  executable?: string
  /** The working folder of the process (default: the test's). */
  cwd?: string
  /**
   * Run it on a terminal, under `script`, to see what a person at a console sees. Its stdout
   * and stderr then come back mixed in `output`, and signals go to `script`'s whole process
   * group, so they reach hearth too.
   */
  terminal?: boolean
  /** Called with everything the process writes, stdout and stderr, as it comes (`output` keeps only the last 64 KiB). */
  onOutput?: (text: string) => void
}

/**
 * `hearth serve` (or `hearth relay`) as a real child process: the only way to test what
 * survives a SIGKILL, how it stops on a signal, and what it prints for a person.
 * It listens on a fresh port each start (PORT=0, read back from its start-up log line), so
 * a restart never races another process for a port; `url` always names the current one.
 * With `keepPort`, only the first start picks a port and every restart takes it again.
 */
export class ChildServer {
  readonly #opts: ChildServerOptions
  #child: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()
  /** on a terminal: the processes under `script` when it was last signalled */
  #below: number[] = []
  #url = ''
  #metricsUrl: string | undefined
  #port = '0'
  #output = ''
  #stderr = ''

  private constructor(opts: ChildServerOptions) {
    // without either, it would write into ./data of whatever folder it runs in
    if (opts.dataDir === undefined && !opts.args?.includes('--data')) throw new Error('give dataDir, or --data in args')
    this.#opts = opts
  }

  static async start(opts: ChildServerOptions): Promise<ChildServer> {
    const server = new ChildServer(opts)
    await server.restart()
    return server
  }

  get url(): string {
    return this.#url
  }

  /** The metrics listener's URL, when METRICS_PORT is set. */
  get metricsUrl(): string | undefined {
    return this.#metricsUrl
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** The process and every process below it (on a terminal: `script`, and hearth under it). */
  get processes(): number[] {
    const pid = this.#child?.pid
    return pid === undefined ? [] : [pid, ...descendants(pid)]
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
  }

  /** How the last process ended (`exit 1`, `SIGKILL`), or undefined while it runs. */
  get exitStatus(): string | undefined {
    if (this.#child === undefined || this.running) return undefined
    return this.#child.signalCode ?? `exit ${this.#child.exitCode}`
  }

  /** The last lines the process wrote on stdout and stderr, as they came, for failure messages. */
  get output(): string {
    return this.#output
  }

  /** The last lines the process wrote on stderr alone (nothing on a terminal, where all is in `output`). */
  get stderr(): string {
    return this.#stderr
  }

  /** Waits until `pattern` matches the output, e.g. a line logged after start-up. */
  async waitForOutput(pattern: RegExp, ms = 30_000): Promise<void> {
    await until(() => pattern.test(this.#output), `output matching ${pattern}`, ms, () => this.#output.slice(-2000))
  }

  /** Starts the process (killing any previous one first) and waits until /info answers. */
  async restart(): Promise<void> {
    const { announced } = await this.#spawn()
    const timeout = this.#opts.startTimeoutMs ?? 60_000
    this.#url = await withTimeout(announced, timeout, () => `${this.#name} did not start in ${timeout} ms:\n${this.#output}`)
    if (this.#opts.keepPort) this.#port = new URL(this.#url).port
    await this.#waitForInfo(timeout)
  }

  /** Starts the process and SIGKILLs it `ms` later, whatever it was doing (opening, sweeping). */
  async killDuringStart(ms: number): Promise<void> {
    const { announced } = await this.#spawn()
    announced.catch(() => {})
    await new Promise((r) => setTimeout(r, ms))
    await this.kill()
  }

  get #name(): string {
    return `hearth ${this.#opts.command ?? 'serve'}`
  }

  /** Spawns the process; `announced` settles with the URL it logs once listening. */
  async #spawn(): Promise<{ announced: Promise<string> }> {
    if (this.running) await this.kill()
    const env = {
      ...process.env,
      HOST: '127.0.0.1',
      SIGNUP_RATE_LIMIT: '1000000',
      ...this.#opts.env,
      // the start-up line that names the port is an info record
      LOG_LEVEL: 'info',
      PORT: this.#port,
      ...(this.#opts.dataDir === undefined ? {} : { DATA_DIR: this.#opts.dataDir }),
    }
    const child = this.#launch(env)
    this.#child = child
    this.#url = ''
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()))
    const announced = new Promise<string>((resolve, reject) => {
      let pending = ''
      child.stdout!.on('data', (chunk: Buffer) => {
        this.#keep(chunk)
        pending += chunk.toString('utf8')
        let nl: number
        while ((nl = pending.indexOf('\n')) !== -1) {
          const line = pending.slice(0, nl)
          pending = pending.slice(nl + 1)
          const serving = servingLine(line)
          if (serving !== undefined) {
            this.#metricsUrl = serving.metrics
            resolve(serving.url)
          }
        }
      })
      child.once('exit', (code, signal) => reject(new Error(`${this.#name} exited (${code ?? signal}) before serving:\n${this.#output}`)))
    })
    child.stderr!.on('data', (chunk: Buffer) => {
      this.#keep(chunk)
      this.#stderr = (this.#stderr + chunk.toString('utf8')).slice(-KEEP_OUTPUT)
    })
    return { announced }
  }

  /** Starts the executable with the command and flags, directly or on a terminal. */
  #launch(env: NodeJS.ProcessEnv): ChildProcess {
    const hearth = this.#opts.executable === undefined ? [process.execPath, ...CLI_NODE_FLAGS, CLI] : [this.#opts.executable]
    const argv = [...hearth, this.#opts.command ?? 'serve', ...(this.#opts.args ?? [])]
    const cwd = this.#opts.cwd
    if (!this.#opts.terminal) return spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    // `script -e` runs the command on a new terminal and exits with its status; its stdin
    // stays an open pipe, since an ended one would reach hearth as an end of input. Detached,
    // it leads a process group that `#signal` can stop whole.
    const line = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
    return spawn('script', ['-qec', line, '/dev/null'], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true })
  }

  #signal(signal: NodeJS.Signals): void {
    const child = this.#child
    if (child === undefined || !this.running) return
    if (!this.#opts.terminal) {
      child.kill(signal)
      return
    }
    // `script` runs hearth in a session of its own, outside `script`'s group: hearth is
    // signalled by its pid, or it outlives `script` until the terminal's hangup reaches it
    // (seconds later, or, once in a suite run, never)
    this.#below = descendants(child.pid!)
    for (const pid of [-child.pid!, ...this.#below]) {
      try {
        process.kill(pid, signal)
      } catch {
        // already gone
      }
    }
  }

  /** Once `script` exited, until what ran under it is gone too. */
  async #belowGone(): Promise<void> {
    const below = this.#below
    this.#below = []
    await until(() => below.every((pid) => !alive(pid)), `the processes under ${this.#name} (${below.join(', ')}) to end`)
  }

  /** SIGKILL: no shutdown hook runs, nothing is flushed that was not already on disk. */
  async kill(): Promise<void> {
    this.#signal('SIGKILL')
    await this.#exited
    await this.#belowGone()
  }

  /** SIGTERM (or SIGINT, a Ctrl-C), the orderly stop; resolves with the exit code. */
  async stop(signal: 'SIGTERM' | 'SIGINT' = 'SIGTERM'): Promise<number | null> {
    const child = this.#child
    if (child === undefined || !this.running) return child?.exitCode ?? null
    this.#signal(signal)
    await this.#exited
    await this.#belowGone()
    return child.exitCode
  }

  /** Resident memory of the server process in bytes, from /proc (Linux). */
  rss(): number {
    return this.#status('VmRSS')
  }

  /**
   * The part of `rss` that is the process's own memory (heap, arenas, stacks), in bytes: without
   * the pages of mapped files, such as LevelDB's tables, which the kernel can drop at will.
   */
  rssAnon(): number {
    return this.#status('RssAnon')
  }

  #status(field: string): number {
    const pid = this.#child?.pid
    if (pid === undefined) throw new Error('the server is not running')
    const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    if (m === null) throw new Error(`no ${field} for ${pid}`)
    return Number(m[1]) * 1024
  }

  /** CPU time (user + system) the server process has used so far, in ms, from /proc (Linux). */
  cpuMs(): number {
    const pid = this.#child?.pid
    if (pid === undefined) throw new Error('the server is not running')
    // fields 14 and 15 of /proc/<pid>/stat, counted after the command name's closing parenthesis
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
  }

  async #waitForInfo(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        const res = await fetch(`${this.#url}/info`, { signal: AbortSignal.timeout(2000) })
        await res.arrayBuffer()
        if (res.ok) return
      } catch {
        // not listening yet
      }
      if (!this.running) throw new Error(`${this.#name} exited while starting:\n${this.#output}`)
      if (Date.now() > deadline) throw new Error(`/info did not answer within ${timeoutMs} ms:\n${this.#output}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  #keep(chunk: Buffer): void {
    this.#opts.onOutput?.(chunk.toString('utf8'))
    this.#output = (this.#output + chunk.toString('utf8')).slice(-KEEP_OUTPUT)
  }
}

/** The start-up record's URLs: the API's, and the metrics listener's when there is one. */
function servingLine(line: string): { url: string; metrics?: string } | undefined {
  try {
    const rec = JSON.parse(line) as { msg?: unknown; url?: unknown; metrics?: unknown }
    const serving = rec.msg === 'hearth is serving' || rec.msg === 'hearth relay is serving'
    if (!serving || typeof rec.url !== 'string') return undefined
    return typeof rec.metrics === 'string' ? { url: rec.url, metrics: rec.metrics } : { url: rec.url }
  } catch {
    return undefined
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

/** The processes below `pid`: its children, theirs, and so on, from /proc (Linux). */
function descendants(pid: number): number[] {
  const out: number[] = []
  let tasks: string[]
  try {
    tasks = readdirSync(`/proc/${pid}/task`)
  } catch {
    return out
  }
  for (const task of tasks) {
    let children = ''
    try {
      children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8')
    } catch {
      continue
    }
    for (const child of children.split(' ').filter(Boolean).map(Number)) out.push(child, ...descendants(child))
  }
  return out
}

/** Whether a process exists and has not ended (a zombie has ended; its parent has yet to reap it). */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return false
  }
}
