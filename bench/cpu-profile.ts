import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ProfileSummary } from './report.js'

/**
 * Where a server's CPU time goes under a benchmark's load: V8's sampling profile of a child
 * server over one window, summed by self time into where the code lives (a package under
 * node_modules, a folder of src/, Node's own JavaScript, native code, garbage collection).
 * BENCHMARKS.md prints it under the figures it explains, so every run says not only how fast
 * but what the time went to.
 *
 * The child must load bench/cpu-profile-hook.ts: give it `env` when starting it; `window` then
 * profiles what runs while `work` does.
 */
export class CpuProfiler {
  readonly #dir = mkdtempSync(join(tmpdir(), 'hearth-bench-profile-'))
  readonly #file = join(this.#dir, 'server.cpuprofile')

  /** What the server's environment needs (`ChildServer.start({ env })`, or `fork`'s env with process.env). */
  get env(): Record<string, string> {
    return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${HOOK}`.trim(), HEARTH_CPU_PROFILE: this.#file }
  }

  /** Profiles the server `pid` while `work` runs (`during` says what that is); returns what `work` returned and the summary. */
  async window<T>(pid: number, during: string, work: () => Promise<T>): Promise<{ result: T; profile: ProfileSummary }> {
    const file = this.#file
    rmSync(file, { force: true })
    rmSync(`${file}.started`, { force: true })
    process.kill(pid, 'SIGUSR2')
    await appears(`${file}.started`)
    let result: T
    try {
      result = await work()
    } finally {
      // stopped whatever `work` did, so that the next window starts a profile rather than ends one
      process.kill(pid, 'SIGUSR2')
      await appears(file)
    }
    return { result, profile: { during, ...summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile) } }
  }

  close(): void {
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

const HOOK = fileURLToPath(new URL('./cpu-profile-hook.js', import.meta.url))

/** Waits for the hook's file (it writes no other signal a parent can wait on), for at most 30 s. */
async function appears(file: string): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`the server wrote no ${file} in 30 s: was it started with the profiler hook?`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

/** How many places and functions a summary lists; the rest are summed as `other`. */
const PLACES = 12
const FUNCTIONS = 12

/** Self time by place and by function, as shares of the samples in which the server was busy. */
export function summarize(profile: CpuProfile): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]))
  const callers = new Map<number, number>()
  for (const n of profile.nodes) for (const child of n.children ?? []) callers.set(child, n.id)
  const places = new Map<string, number>()
  const functions = new Map<string, number>()
  let idle = 0
  for (const id of profile.samples) {
    const frame = byId.get(id)!
    if (frame.functionName === '(idle)') {
      idle++
      continue
    }
    const caller = callers.get(id)
    const place = placeOf(frame, caller === undefined ? undefined : byId.get(caller))
    places.set(place, (places.get(place) ?? 0) + 1)
    const fn = place.startsWith(NATIVE_OF) ? `(a native call of ${place.slice(NATIVE_OF.length)})`
      : `${frame.functionName || '(anonymous)'}${frame.url === '' ? '' : ` (${shortUrl(frame.url)}:${frame.lineNumber + 1})`}`
    functions.set(fn, (functions.get(fn) ?? 0) + 1)
  }
  const busy = profile.samples.length - idle
  const share = (n: number) => Math.round((n / Math.max(1, busy)) * 1000) / 10
  const top = (m: Map<string, number>, n: number) => {
    const rows = [...m].sort((a, b) => b[1] - a[1])
    const out = rows.slice(0, n).map(([name, count]) => ({ name, share: share(count) }))
    const rest = rows.slice(n).reduce((s, [, c]) => s + c, 0)
    if (rest > 0) out.push({ name: 'other', share: share(rest) })
    return out
  }
  return {
    seconds: Math.round((profile.endTime - profile.startTime) / 1e4) / 100,
    busy: Math.round((busy / Math.max(1, profile.samples.length)) * 1000) / 10,
    places: top(places, PLACES),
    functions: top(functions, FUNCTIONS),
  }
}

/**
 * Where a frame's code lives; a native function by the package that called it (`caller`):
 * V8 names every call into a Node-API addon after one function of the first addon loaded (in
 * Hearth, the blake3 binding's `update` or another), so LevelDB's batch writes and iterator
 * steps would otherwise show under a hash's name.
 */
export function placeOf(frame: { functionName: string; url: string }, caller?: { url: string }): string {
  if (frame.functionName === '(garbage collector)') return 'garbage collection'
  if (frame.functionName === '(program)') return 'V8 and native code outside any function'
  if (frame.url === '') {
    const pkg = caller === undefined || frame.functionName.startsWith('(') ? null : PACKAGE.exec(caller.url)
    return pkg === null ? 'native functions (system calls, builtins)' : `${NATIVE_OF}${pkg[1]!}`
  }
  if (frame.url.startsWith('node:')) return "Node's JavaScript"
  if (frame.url.startsWith('wasm://')) return 'WebAssembly (blake3, from hash-wasm)'
  const pkg = PACKAGE.exec(frame.url)
  if (pkg !== null) return pkg[1]!
  const own = /\/dist\/((?:src|bench|test)(?:\/[^/]+)*)\/[^/]+$/.exec(frame.url)
  if (own !== null) return `hearth ${own[1]!.split('/').slice(0, 2).join('/')}`
  return frame.url
}

/** The outermost package a file lies in: what the server depends on. */
const PACKAGE = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//
const NATIVE_OF = 'native code of '

function shortUrl(url: string): string {
  if (url.startsWith('node:')) return url
  const pkg = /\/node_modules\/(.+)$/.exec(url)
  if (pkg !== null) return pkg[1]!
  const own = /\/dist\/(.+)$/.exec(url)
  return own !== null ? own[1]! : url
}
