import { renameSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'

/*
 * Loaded with `--import` into a server under benchmark (bench/cpu-profile.ts sets it up) when
 * HEARTH_CPU_PROFILE names a file. The first SIGUSR2 starts V8's sampling profiler and writes
 * `<file>.started`; the next one stops it and writes the profile to `<file>`, through a
 * temporary name so that a reader never sees half of it. Nothing else of the server changes.
 */
const out = process.env.HEARTH_CPU_PROFILE
if (out !== undefined && out !== '') {
  const session = new Session()
  session.connect()
  let running = false
  let turn = Promise.resolve()
  const toggle = async () => {
    if (!running) {
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval: SAMPLE_US })
      await session.post('Profiler.start')
      running = true
      writeFileSync(`${out}.started`, '')
      return
    }
    const { profile } = await session.post('Profiler.stop')
    running = false
    writeFileSync(`${out}.tmp`, JSON.stringify(profile))
    renameSync(`${out}.tmp`, out)
  }
  process.on('SIGUSR2', () => {
    // a failed toggle is reported, never left to crash the server under benchmark
    turn = turn.then(toggle).catch((err: unknown) => console.error(`cpu profile: ${String(err)}`))
  })
}

/** µs between samples: fine enough for a few seconds of load, cheap enough not to change it. */
const SAMPLE_US = 250
