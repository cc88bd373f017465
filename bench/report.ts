import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { pathToFileURL } from 'node:url'

/**
 * The results of one `npm run bench` and what is made of them: bench/results/latest.json, a
 * dated copy, one SVG line chart per module that has series (`<series>@<x>` figures), or one
 * per entry of its `charts` when it has that, and BENCHMARKS.md. `node dist/bench/report.js` redraws the charts and the page from latest.json.
 */

export interface BenchResult {
  description?: string
  figures?: Record<string, number | string>
  goals?: Record<string, string>
  chart?: ChartLabels
  /** several charts instead of one, each of the series `series` selects (see `selects`) */
  charts?: (ChartLabels & { series: string })[]
  durationMs?: number
  skipped?: string
  error?: string
  /** set when the module was not run this time: the date of the run its figures come from */
  from?: string
  /** and the commit that run measured, when it recorded one */
  fromCommit?: string
  /** and the Node version it ran on, when it recorded one */
  fromNode?: string
  /** the server's CPU profiles over the module's main loads (bench/cpu-profile.ts) */
  profiles?: ProfileSummary[]
}

/** Self time of a server under load, as shares (%) of the samples in which it was busy. */
export interface ProfileSummary {
  /** the load it was taken under, as a phrase: `a window of 50 connections' durable PUTs` */
  during?: string
  /** how long the profile ran */
  seconds: number
  /** the share of samples (%) in which the server was not idle */
  busy: number
  /** by where the code lives: a package, a folder of src/, Node's JavaScript, native code, GC */
  places: { name: string; share: number }[]
  /** the functions with the most self time */
  functions: { name: string; share: number }[]
}

export interface ChartLabels {
  title?: string
  x?: string
  y?: string
  /** a log y axis, for a series that falls by decades */
  logY?: boolean
}

export interface Results {
  date: string
  command: string
  /** the commit measured (`+`: with changes to src/ or bench/ not committed) */
  commit?: string
  machine: { cpu: string; cores: number; memoryGiB: number; node: string; os: string; loadAverage: number[] }
  durationMs: number
  modules: Record<string, BenchResult>
}

const ROOT = new URL('../../', import.meta.url)
const RESULTS = new URL('bench/results/', ROOT)
const PAGE = new URL('BENCHMARKS.md', ROOT)
/** `bench/notes/<module>.md`: what a module's figures and profile mean, written by hand, printed under them */
const NOTES = new URL('bench/notes/', ROOT)

const OPS: Record<string, (a: number, b: number) => boolean> = {
  '>=': (a, b) => a >= b,
  '<=': (a, b) => a <= b,
  '==': (a, b) => a === b,
  '>': (a, b) => a > b,
  '<': (a, b) => a < b,
}

/** `'>= 0.6'` against a figure; a missing or non-numeric figure fails. */
export function check(goal: string, value: number | string | undefined): boolean {
  const m = /^\s*(>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(goal)
  if (m === null || typeof value !== 'number') return false
  return OPS[m[1]!]!(value, Number(m[2]))
}

const SERIES_POINT = /^(.+)@(-?\d+(?:\.\d+)?)$/

/** The `<series>@<x>` figures of a module, as chart rows. */
export function seriesOf(figures: Record<string, number | string>): { series: string; x: number; y: number }[] {
  const rows: { series: string; x: number; y: number }[] = []
  for (const [key, y] of Object.entries(figures)) {
    const m = SERIES_POINT.exec(key)
    if (m !== null && typeof y === 'number') rows.push({ series: m[1]!, x: Number(m[2]), y })
  }
  return rows.sort((a, b) => a.series.localeCompare(b.series) || a.x - b.x)
}

/**
 * Whether a chart's `series` takes a series name: `/…/` is a regular expression, anything
 * else a prefix of the name.
 */
export function selects(series: string, name: string): boolean {
  if (series.length >= 2 && series.startsWith('/') && series.endsWith('/')) return new RegExp(series.slice(1, -1)).test(name)
  return name.startsWith(series)
}

/** A line chart of every series of one module, as SVG, drawn by vega-lite without a browser. */
export async function chartSvg(rows: { series: string; x: number; y: number }[], labels: BenchResult['chart'] = {}): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')])
  const xs = rows.map((r) => r.x)
  // Subscriber and connection counts span decades: a log axis keeps the small ones readable.
  const logX = Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 20
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: labels.title ?? '',
    width: 560,
    height: 300,
    background: 'white',
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: labels.x ?? 'x', scale: logX ? { type: 'log', nice: false } : { zero: false, nice: false } },
      y: { field: 'y', type: 'quantitative', title: labels.y ?? 'value', ...(labels.logY === true ? { scale: { type: 'log' } } : {}) },
      color: { field: 'series', type: 'nominal', title: null },
    },
  }
  const view = new vega.View(vega.parse(vl.compile(spec as never).spec), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return svg
}

/** The results of the last run, if there was one. */
export async function readLatest(): Promise<Results | undefined> {
  const latest = new URL('latest.json', RESULTS)
  return existsSync(latest) ? (JSON.parse(await readFile(latest, 'utf8')) as Results) : undefined
}

/** Writes latest.json, its dated copy, the charts and BENCHMARKS.md; returns what it wrote. */
export async function writeResults(results: Results): Promise<URL[]> {
  await mkdir(RESULTS, { recursive: true })
  const json = JSON.stringify(results, null, 2) + '\n'
  const latest = new URL('latest.json', RESULTS)
  const dated = new URL(`${results.date.slice(0, 19).replace(/:/g, '-')}.json`, RESULTS)
  await writeFile(latest, json)
  await writeFile(dated, json)
  return [latest, dated, ...(await writeReport(results))]
}

export async function writeReport(results: Results): Promise<URL[]> {
  // Charts of modules that no longer have series must not linger beside the page.
  for (const f of await readdir(RESULTS)) if (f.endsWith('.svg')) await rm(new URL(f, RESULTS))
  const charts: { name: string; title: string; file: string }[] = []
  for (const [name, m] of Object.entries(results.modules)) {
    const rows = seriesOf(m.figures ?? {})
    if (rows.length === 0) continue
    if (m.charts !== undefined && m.charts.length > 0) {
      for (const [i, chart] of m.charts.entries()) {
        const selected = rows.filter((r) => selects(chart.series, r.series))
        if (selected.length === 0) continue
        const file = `${name}-${i + 1}.svg`
        await writeFile(new URL(file, RESULTS), await chartSvg(selected, chart))
        charts.push({ name, title: chart.title ?? `${name} ${i + 1}`, file: `bench/results/${file}` })
      }
      continue
    }
    const file = `${name}.svg`
    await writeFile(new URL(file, RESULTS), await chartSvg(rows, m.chart))
    charts.push({ name, title: m.chart?.title ?? name, file: `bench/results/${file}` })
  }
  const notes: Record<string, string> = {}
  for (const name of Object.keys(results.modules)) {
    const file = new URL(`${name}.md`, NOTES)
    if (existsSync(file)) notes[name] = (await readFile(file, 'utf8')).trim()
  }
  await writeFile(PAGE, renderPage(results, charts, notes))
  return [PAGE, ...charts.map((c) => new URL(c.file, ROOT))]
}

export function renderPage(r: Results, charts: { name: string; title: string; file: string }[], notes: Record<string, string> = {}): string {
  const ran = Object.entries(r.modules).filter(([, m]) => m.skipped === undefined)
  const skipped = Object.entries(r.modules).filter(([, m]) => m.skipped !== undefined)
  const carried = ran.filter(([, m]) => m.from !== undefined)
  // goals count for the modules this run measured; carried ones say theirs under their heading
  const goals = ran.filter(([, m]) => m.from === undefined).flatMap(([, m]) => Object.entries(m.goals ?? {}).map(([f, g]) => check(g, m.figures?.[f])))
  const passed = goals.filter(Boolean).length
  const out: string[] = [
    '# Benchmarks',
    '',
    '<!-- Generated by `npm run bench` (bench/index.ts, bench/report.ts); edits here are overwritten. -->',
    '',
    `Run on ${when(r.date)}${r.commit === undefined ? '' : ` at commit ${r.commit}`}; it took ${seconds(r.durationMs)}. ` +
      `${passed} of ${goals.length} goals met${carried.length > 0 ? ' in the modules it ran' : ''}${ran.some(([, m]) => m.error) ? '; some modules failed to run' : ''}.` +
      (carried.length > 0 ? ` ${carried.length} of the modules below were not run this time: they show the figures of the run named under their heading, measured on the code of that run.` : ''),
    '',
    'Reproduce with:',
    '',
    '```sh',
    r.command,
    '```',
    '',
    '`npm run bench` runs everything; `-- --quick` makes a short run, `-- --only put,match` selects.',
    '',
    '## Machine',
    '',
    '| CPU | cores | memory | Node | OS | load average at start (1, 5, 15 min) |',
    '| --- | --- | --- | --- | --- | --- |',
    `| ${r.machine.cpu} | ${r.machine.cores} | ${r.machine.memoryGiB} GiB | ${r.machine.node} | ${r.machine.os} | ${r.machine.loadAverage.join(', ')} |`,
    '',
  ]
  if ((r.machine.loadAverage[0] ?? 0) > r.machine.cores) {
    out.push(`The machine was busy when the run started (load ${r.machine.loadAverage[0]} on ${r.machine.cores} cores): its figures are noisy and on the slow side; compare runs made on an idle machine.`, '')
  }
  if (carried.length > 0) out.push('Figures carried over from an earlier run were measured on the machine of that run, which may not be this one: compare a ratio measured side by side within one run, not figures across runs.', '')
  out.push('## Results', '')
  for (const [name, m] of ran) {
    out.push(`### ${name}${m.durationMs !== undefined ? ` (${seconds(m.durationMs)})` : ''}`, '')
    if (m.from !== undefined) {
      const commit = m.fromCommit === undefined ? '' : `, at commit ${m.fromCommit}`
      const node = m.fromNode === undefined ? '' : `, on Node ${m.fromNode}`
      out.push(`*Not run this time: these figures are from the run of ${when(m.from)}${commit}${node} (\`npm run bench -- --only ${name}\` measures them again).*`, '')
    }
    if (m.description) out.push(m.description, '')
    if (m.error) out.push('Failed to run:', '', '```', m.error.split('\n').slice(0, 5).join('\n'), '```', '')
    const figures = Object.entries(m.figures ?? {})
    if (figures.length > 0) {
      out.push('| figure | value | goal | |', '| --- | --- | --- | --- |')
      for (const [f, v] of figures) {
        const g = m.goals?.[f]
        out.push(`| ${f} | ${typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : v} | ${g ? pretty(g) : ''} | ${g ? (check(g, v) ? 'pass' : '**FAIL**') : ''} |`)
      }
      for (const [f, g] of Object.entries(m.goals ?? {})) if (!(f in (m.figures ?? {}))) out.push(`| ${f} | (missing) | ${pretty(g)} | **FAIL** |`)
      out.push('')
    }
    for (const chart of charts.filter((c) => c.name === name)) out.push(`![${chart.title}](${chart.file})`, '')
    for (const profile of m.profiles ?? []) out.push(...renderProfile(profile))
    if (notes[name] !== undefined) out.push(notes[name], '')
  }
  if (skipped.length > 0) {
    out.push('## Not run', '')
    for (const [name, m] of skipped) out.push(`- ${name}: ${m.skipped}`)
    out.push('')
  }
  return out.join('\n')
}

/** A module's server profile as two tables: by place, and the hottest functions. */
export function renderProfile(p: ProfileSummary): string[] {
  const table = (head: string, rows: { name: string; share: number }[]) => [
    `| ${head} | share of busy samples |`,
    '| --- | --- |',
    ...rows.map((row) => `| ${row.name.replace(/\|/g, '\\|')} | ${row.share.toFixed(1)}% |`),
    '',
  ]
  return [
    `Where the server's CPU went${p.during === undefined ? '' : ` during ${p.during}`} (self time, from V8's sampling profiler over ${p.seconds} s; the server was busy in ${p.busy}% of the samples):`,
    '',
    ...table('where', p.places),
    ...table('function', p.functions),
  ]
}

const when = (iso: string) => `${iso.slice(0, 10)} at ${iso.slice(11, 16)} UTC`
const pretty = (goal: string) => goal.replace('>=', '≥').replace('<=', '≤').replace('==', '=')
const seconds = (ms: number) => (ms >= 60_000 ? `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s` : `${(ms / 1000).toFixed(1)} s`)

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = JSON.parse(await readFile(new URL('latest.json', RESULTS), 'utf8')) as Results
  for (const url of await writeReport(results)) console.log(`wrote ${url.pathname}`)
}
