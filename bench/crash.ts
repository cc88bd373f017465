import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { runCrashRounds, type CrashFigures } from '../test/helpers/crash-harness.js'

export const description = 'SIGKILL (and SIGTERM) at random moments under concurrent writers and followers: nothing acknowledged is lost, nothing half-written shows, the log stays gapless'
export const goals = { violations: '== 0' }

/**
 * The crash harness, long mode: `hearth serve` SIGKILLed at random moments under eight
 * concurrent writers (PUTs up to 1 MiB, DELETEs) and live followers, restarted on the same
 * data folder, and checked after every restart (see test/helpers/crash-harness.ts).
 * `violations` must be 0; the rest says how much was exercised and how long restarts took.
 * CRASH_ROUNDS overrides the number of rounds (default 150).
 */
export async function benchCrash(rounds = Number(process.env.CRASH_ROUNDS ?? 150)): Promise<CrashFigures> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-crash-'))
  try {
    const { figures, violations } = await runCrashRounds({ dataDir, rounds, killAfterMs: [100, 2500] })
    for (const v of violations.slice(0, 20)) console.log(`VIOLATION ${v}`)
    console.log(`crash: ${figures.rounds} kills, ${figures.ackedPuts} PUTs and ${figures.ackedDeletes} DELETEs acknowledged, ` +
      `${figures.unanswered} in flight at a kill (${figures.unansweredLanded} of them landed), ${figures.events} events, ` +
      `restart p50 ${Math.round(figures.restartMsP50)} ms, violations ${figures.violations}`)
    return figures
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await benchCrash()
  if (figures.violations > 0) process.exitCode = 1
}
