import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { runStalled, type StalledFigures } from '../test/helpers/stalled-harness.js'

export const description = '1,000 streams of which 100 stop reading under steady writes: bounded memory, live latency as without them, every stalled reader complete once resumed; then 1,000 streams that all stop reading and resume at once (`resumeAll*`)'
export const goals = { violations: '== 0', stalledComplete: '== 100', resumeAllComplete: '== 1000', resumeAllRssGrowthMb: '<= 100' }

/**
 * Stalled readers, long mode: 1,000 streams of which 100 stop reading, under 24 writes a
 * second (half with 8 KB frames) for STALLED_SECONDS (default 150), server in a child
 * process. Run twice, without and with the stalled readers, so the live readers' delivery
 * latency (commit to parse, client and server sharing the same two cores, which 24 writes a
 * second to 1,000 streams keeps below saturation) can be read against its own normal range.
 *
 * A third run stalls all 1,000 for the whole of the writes and resumes them at once: each
 * must still get every event in order, and the server's RSS may rise by at most 100 MB above
 * where the writes left it while they all catch up (`resumeAllRssGrowthMb`), since replays
 * share one bounded pool of log pages rather than reading and encoding their own.
 */
export async function benchStalled(seconds = Number(process.env.STALLED_SECONDS ?? 150)): Promise<Record<string, number>> {
  const run = async (stalled: number, allResumeAtEnd = false): Promise<StalledFigures> => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hearth-bench-stalled-'))
    try {
      const serverEnv: Record<string, string> = process.env.STALLED_NODE_OPTIONS === undefined ? {} : { NODE_OPTIONS: process.env.STALLED_NODE_OPTIONS }
      const { figures, violations } = await runStalled({ dataDir, streams: 1000, stalled, seconds, rate: 24, allResumeAtEnd, serverEnv, progress: (l) => console.log(`  ${l}`) })
      for (const v of violations.slice(0, 20)) console.log(`VIOLATION ${v}`)
      return figures
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
  if (process.env.STALLED_RESUME_ONLY === '1') {
    // the third run alone, to look into the memory of a resume
    const all = await run(1000, true)
    console.log(`stalled: 1000 streams all stalled then resumed at once: ${all.stalledComplete}/1000 complete, RSS +${all.rssResumeGrowthMb} MB while they caught up (${all.rssFinalMb} MB after)`)
    return { resumeAllComplete: all.stalledComplete, resumeAllRssGrowthMb: all.rssResumeGrowthMb, violations: all.violations }
  }
  const calm = await run(0)
  const stalled = await run(100)
  const all = await run(1000, true)
  console.log(`stalled: 1000 streams, latency p50/p99 ${calm.latencyP50Ms}/${calm.latencyP99Ms} ms with none stalled, ` +
    `${stalled.latencyP50Ms}/${stalled.latencyP99Ms} ms with 100 stalled (each sent ${stalled.stalledBytesEachMb} MB); ` +
    `RSS ${stalled.rssBaselineMb} → max ${stalled.rssMaxMb} MB (${calm.rssMaxMb} MB with none stalled); ` +
    `${stalled.stalledComplete}/100 stalled complete; violations ${calm.violations + stalled.violations + all.violations}`)
  console.log(`stalled: 1000 streams all stalled then resumed at once: ${all.stalledComplete}/1000 complete, RSS +${all.rssResumeGrowthMb} MB while they caught up (${all.rssFinalMb} MB after)`)
  return {
    streams: 1000,
    stalled: 100,
    seconds,
    events: stalled.events,
    latencyP50MsCalm: calm.latencyP50Ms,
    latencyP99MsCalm: calm.latencyP99Ms,
    latencyP50Ms: stalled.latencyP50Ms,
    latencyP99Ms: stalled.latencyP99Ms,
    latencyMaxMs: stalled.latencyMaxMs,
    rssBaselineMb: stalled.rssBaselineMb,
    rssWarmMb: stalled.rssWarmMb,
    rssMaxMb: stalled.rssMaxMb,
    rssFinalMb: stalled.rssFinalMb,
    rssMaxMbCalm: calm.rssMaxMb,
    stalledBytesEachMb: stalled.stalledBytesEachMb,
    stalledComplete: stalled.stalledComplete,
    liveComplete: stalled.liveComplete + calm.liveComplete,
    resumeAllComplete: all.stalledComplete,
    resumeAllRssGrowthMb: all.rssResumeGrowthMb,
    resumeAllRssMaxMb: all.rssMaxMb,
    resumeAllBytesEachMb: all.stalledBytesEachMb,
    violations: calm.violations + stalled.violations + all.violations,
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchStalled()
  if (r.violations > 0) process.exitCode = 1
}
