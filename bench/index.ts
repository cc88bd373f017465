/**
 * `npm run bench [-- --quick] [-- --only put,match]`: runs every benchmark module that exists,
 * prints each figure with its goal, writes bench/results/latest.json (and a dated copy) and
 * regenerates BENCHMARKS.md with its charts (bench/report.ts).
 *
 * A benchmark module is bench/<name>.ts and:
 *   - exports one async function `bench<Name>()` (`benchIdleMemory` for idle-memory.ts; `run()`
 *     also works) that takes no argument and returns a flat object of figures, number or string;
 *   - reads BENCH_QUICK=1 from the environment for a short run (`--quick` sets it);
 *   - may export `goals`, figure → goal, e.g. `{ ratio: '>= 0.6', violations: '== 0' }`
 *     (operators: >=, <=, ==, >, <), and `description`, one line;
 *   - names the points of a series `<series>@<x>`, e.g. `deliveryP50Ms@1000` for the p50 at
 *     1,000 subscribers; every module with such figures gets a line chart, labelled by its
 *     optional export `chart = { title, x, y }`; or, when it exports
 *     `charts = [{ title, x, y, series }, …]`, one chart per entry, of the series whose name
 *     starts with `series` (a string) or matches it (a RegExp).
 *   - may change `description` while it runs (`export let`): it is read once the run is over;
 *     so is `profiles`, the server's CPU profiles over its main loads (bench/cpu-profile.ts),
 *     which BENCHMARKS.md prints under its figures, with bench/notes/<name>.md if there is one.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cpus, loadavg, totalmem, type as osType, release } from 'node:os'
import { fileURLToPath } from 'node:url'
import { type BenchResult, type ChartLabels, type Results, check, readLatest, writeResults } from './report.js'

/** Run in this order; the cheap ones first so a quick look comes quickly. */
const MODULES = ['put', 'largefile', 'depth', 'postgres', 'relay', 'consumers', 'match', 'replay', 'snapshot', 'fanout', 'fanout-cpu', 'curves', 'idle-memory', 'stalled', 'hostile', 'crash']

/** Goals and descriptions for modules that do not export their own. */
const KNOWN: Record<string, { goals?: Record<string, string>; description?: string }> = {
  match: { goals: { ratio: '<= 1.5' }, description: 'cost of matching one event against 10 and against 100,000 subscriptions' },
  crash: { goals: { violations: '== 0' }, description: 'SIGKILL at random moments under concurrent writers: nothing acknowledged is lost' },
  stalled: { goals: { violations: '== 0' }, description: '1,000 streams of which 100 stop reading under steady writes: bounded memory, no gap for anyone' },
  hostile: { goals: { failures: '== 0', damaged: '== 0', serverAlive: '== 1' }, description: 'generated hostile requests against `hearth serve`: no crash, no damage to stored data' },
}

/** `--quick` lengths for modules that take theirs from their own variables. */
const QUICK_ENV: Record<string, string> = { CRASH_ROUNDS: '10', STALLED_SECONDS: '20', HOSTILE_REQUESTS: '5000', HOSTILE_PG_REQUESTS: '2000' }

const USAGE = `npm run bench -- [--quick] [--only ${MODULES.join(',')}]`

function parse(argv: string[]): { quick: boolean; only?: string[] } {
  let quick = false
  let only: string[] | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--quick') quick = true
    else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg.includes('=') ? arg.slice('--only='.length) : argv[++i]
      only = (value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')
      const unknown = only.filter((n) => !MODULES.includes(n))
      if (only.length === 0 || unknown.length > 0) usage(`--only: unknown benchmark ${unknown.join(', ') || '(none)'}`)
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE)
      process.exit(0)
    } else usage(`unknown argument ${arg}`)
  }
  return { quick, only }
}

function usage(problem: string): never {
  console.error(`bench: ${problem}\nusage: ${USAGE}`)
  process.exit(2)
}

const camel = (name: string) => name.replace(/(^|-)(\w)/g, (_, __, c: string) => c.toUpperCase())

type Bench = () => Promise<Record<string, unknown>>

async function runModule(name: string): Promise<BenchResult> {
  const file = new URL(`./${name}.js`, import.meta.url)
  if (!existsSync(file)) return { skipped: `bench/${name}.ts is not there yet` }
  const mod = (await import(file.href)) as Record<string, unknown>
  const fn = (mod.run ?? mod[`bench${camel(name)}`] ?? Object.entries(mod).find(([k, v]) => k.startsWith('bench') && typeof v === 'function')?.[1]) as Bench | undefined
  if (typeof fn !== 'function') return { error: `bench/${name}.ts exports no bench${camel(name)}() or run()` }
  const goals = { ...KNOWN[name]?.goals, ...(mod.goals as Record<string, string> | undefined) }
  const description = () => (mod.description as string | undefined) ?? KNOWN[name]?.description
  const chart = mod.chart as BenchResult['chart']
  const charts = (mod.charts as ChartExport[] | undefined)?.map(({ series, ...labels }) => ({ ...labels, series: series instanceof RegExp ? `/${series.source}/` : series }))
  const started = performance.now()
  try {
    const figures = flatten(await fn())
    const profiles = mod.profiles as BenchResult['profiles']
    return { description: description(), figures, goals, chart, charts, profiles, durationMs: Math.round(performance.now() - started) }
  } catch (err) {
    return { description: description(), goals, error: err instanceof Error ? (err.stack ?? err.message) : String(err), durationMs: Math.round(performance.now() - started) }
  }
}

/** An entry of a module's `charts`; the RegExp is kept as `/source/` text in the results. */
type ChartExport = ChartLabels & { series: string | RegExp }

/** Modules promise flat figures; anything nested is flattened with dots, anything else kept as text. */
function flatten(value: Record<string, unknown>, prefix = '', out: Record<string, number | string> = {}): Record<string, number | string> {
  for (const [k, v] of Object.entries(value)) {
    const key = prefix + k
    if (typeof v === 'number' || typeof v === 'string') out[key] = v
    else if (typeof v === 'bigint' || typeof v === 'boolean') out[key] = String(v)
    else if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v as Record<string, unknown>, `${key}.`, out)
    else if (v !== undefined) out[key] = JSON.stringify(v)
  }
  return out
}

function print(name: string, result: BenchResult): void {
  if (result.skipped) return console.log(`\n== ${name}: skipped (${result.skipped})`)
  console.log(`\n== ${name}${result.durationMs !== undefined ? ` (${(result.durationMs / 1000).toFixed(1)} s)` : ''}`)
  if (result.error) console.log(`  FAILED TO RUN: ${result.error.split('\n')[0]}`)
  const width = Math.max(0, ...Object.keys(result.figures ?? {}).map((k) => k.length))
  for (const [figure, value] of Object.entries(result.figures ?? {})) {
    const goal = result.goals?.[figure]
    const verdict = goal === undefined ? '' : `   goal ${goal}: ${check(goal, value) ? 'pass' : 'FAIL'}`
    console.log(`  ${figure.padEnd(width)}  ${value}${verdict}`)
  }
  for (const figure of Object.keys(result.goals ?? {})) {
    if (result.figures !== undefined && !(figure in result.figures)) console.log(`  ${figure.padEnd(width)}  (missing)   goal ${result.goals![figure]}: FAIL`)
  }
}

async function main(): Promise<void> {
  const options = parse(process.argv.slice(2))
  if (options.quick) {
    process.env.BENCH_QUICK = '1'
    for (const [k, v] of Object.entries(QUICK_ENV)) process.env[k] ??= v
  }
  const cpu = cpus()
  const results: Results = {
    date: new Date().toISOString(),
    command: `npm run bench${options.quick || options.only ? ' --' : ''}${options.quick ? ' --quick' : ''}${options.only ? ` --only ${options.only.join(',')}` : ''}`,
    machine: {
      cpu: cpu[0]?.model.trim() ?? 'unknown',
      cores: cpu.length,
      memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
      os: `${osType()} ${release()} ${process.arch}`,
      loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    },
    commit: headCommit(),
    durationMs: 0,
    modules: {},
  }
  const previous = await readLatest()
  const started = performance.now()
  for (const name of MODULES) {
    if (options.only !== undefined && !options.only.includes(name)) {
      const there = existsSync(new URL(`./${name}.js`, import.meta.url))
      const before = previous?.modules[name]
      // a module not run now keeps what it measured last, marked with the run it came from
      if (there && before !== undefined && before.skipped === undefined && before.error === undefined) {
        const fresh = before.from === undefined
        results.modules[name] = {
          ...before,
          from: before.from ?? previous!.date,
          fromCommit: fresh ? previous!.commit : before.fromCommit,
          fromNode: fresh ? previous!.machine.node : before.fromNode,
        }
      }
      else results.modules[name] = { skipped: there ? 'not selected (--only)' : `bench/${name}.ts is not there yet` }
      continue
    }
    const result = await runModule(name)
    results.modules[name] = result
    print(name, result)
  }
  results.durationMs = Math.round(performance.now() - started)
  const written = await writeResults(results)
  const failed = Object.values(results.modules).filter((m) => m.from === undefined).filter((m) => m.error !== undefined || Object.entries(m.goals ?? {}).some(([f, g]) => !check(g, m.figures?.[f])))
  console.log(`\n${(results.durationMs / 1000).toFixed(1)} s in all. Wrote ${written.map((f) => fileURLToPath(f).replace(process.cwd() + '/', '')).join(', ')}.`)
  if (failed.length > 0) {
    console.log(`Goals not met or modules that failed: ${Object.entries(results.modules).filter(([, m]) => failed.includes(m)).map(([n]) => n).join(', ')}`)
    process.exitCode = 1
  }
}

/** The commit the benchmarks ran on, as `git` names it, with `+` when the tree had changes. */
function headCommit(): string | undefined {
  try {
    const cwd = fileURLToPath(new URL('../../', import.meta.url))
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'bench'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
    return head + (dirty ? '+' : '')
  } catch {
    return undefined
  }
}

await main()
