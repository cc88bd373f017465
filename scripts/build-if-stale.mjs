// `npm start`'s first step: builds dist/ with tsc only when it is missing or older than a
// source file, so a start after the first is immediate. `npm run build` always builds.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const BUILT = 'dist/src/cli/index.js'

function newest(dir) {
  let time = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    time = Math.max(time, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
  }
  return time
}

// the server and the client package it is built with (tsc -b builds the client first)
const CLIENT = 'packages/client/src'
const sources = Math.max(newest('src'), existsSync(CLIENT) ? newest(CLIENT) : 0, statSync('tsconfig.json').mtimeMs, statSync('tsconfig.build.json').mtimeMs)
const reason = !existsSync(BUILT) ? 'dist/ is missing' : statSync(BUILT).mtimeMs < sources ? 'src/ changed since the last build' : undefined
if (reason !== undefined) {
  process.stderr.write(`hearth: ${reason}: building it with tsc (about 20 s; later starts skip this)\n`)
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const run = spawnSync(process.execPath, [tsc, '-b', '--force', 'tsconfig.build.json'], { stdio: 'inherit' })
  if (run.status !== 0) {
    process.stderr.write('hearth: the build failed; see the errors above (`npm ci` first on a fresh clone)\n')
    process.exit(1)
  }
  await import('./finish-build.mjs')
}
