// Runs a test command, passes its output through as it comes, and ends with one line of its
// own: `N passed, N failed, N skipped`, summed over every tap run in it (tap's closing
// `# { total: …, pass: …, fail: …, skip: … }` lines). Exits with the command's status; a command
// that failed without a failed assertion (a crash, a coverage floor missed) counts one failure.
import { spawn } from 'node:child_process'

const [cmd, ...args] = process.argv.slice(2)
const totals = { pass: 0, fail: 0, skip: 0 }
let rest = ''
const tally = (text) => {
  const lines = (rest + text).split('\n')
  rest = lines.pop()
  for (const line of lines) {
    if (!/^# \{ total: \d+/.test(line)) continue
    for (const k of Object.keys(totals)) totals[k] += Number(new RegExp(`${k}: (\\d+)`).exec(line)?.[1] ?? 0)
  }
}
const child = spawn(cmd, args, { stdio: ['inherit', 'pipe', 'pipe'], shell: false })
child.stdout.on('data', (c) => (process.stdout.write(c), tally(c.toString())))
child.stderr.on('data', (c) => process.stderr.write(c))
child.on('close', (code, signal) => {
  tally('\n')
  const status = code ?? (signal ? 1 : 0)
  if (status !== 0 && totals.fail === 0) totals.fail = 1
  process.stdout.write(`${totals.pass} passed, ${totals.fail} failed, ${totals.skip} skipped\n`)
  process.exit(status)
})
