import t, { type Test } from 'tap'
import { TEST_ENGINE } from './helpers/engine.js'
import { instances } from './helpers/instances.js'
import { requirePostgres } from './helpers/postgres.js'
import { floorOf, headOf, newUser, startTestServer } from './helpers/server.js'
import { RawStream, seqOf, writeMany } from './helpers/feed.js'
import type { SseFrame } from './helpers/sse-frames.js'
import { until } from './helpers/until.js'

/**
 * SPEC §5, §6.3, §9: every reader on every instance learns of pruning from the same read that
 * would have returned the pruned events. Writes go through one instance (A) under
 * EVENT_RETENTION=100 while readers on another instance (B), which takes no writes, replay from
 * cursors just behind the floor, where pruning overtakes them: every jump in their seqs must
 * come after an `event: reset` that names it. B applies no retention of its own, so it learns
 * of the floor only from storage; once the writes stop it hears of no more commits, and a
 * replay from 0 on it must still begin with the reset to A's floor. On LevelDB, A and B are one
 * process.
 */

const WRITES = 1000

/** What in a replay's frames breaks SPEC §6.3, or undefined: events in order, every gap announced. */
function gapIn(after: number, frames: readonly SseFrame[]): string | undefined {
  let next = after + 1
  for (const f of frames) {
    if (f.event === 'reset') {
      const { requested, floor } = JSON.parse(f.data!) as { requested: string; floor: string }
      if (Number(requested) !== next - 1 || Number(floor) < next) return `reset ${f.data} at ${next - 1}`
      next = Number(floor)
    } else if (f.event === 'PUT' || f.event === 'DEL') {
      const seq = seqOf(f)
      if (seq !== next) return `after ${next - 1} came ${seq} with no reset`
      next = seq + 1
    }
  }
  return undefined
}

async function run(t: Test, writeUrl: string, readUrl: string): Promise<void> {
  const user = await newUser({ url: writeUrl })
  let writing = true
  const writes = writeMany(user, WRITES, (i) => `/pub/floor/${i}`).finally(() => (writing = false))
  let reads = 0
  let resets = 0
  const gaps: string[] = []
  const reader = async () => {
    while (writing) {
      // behind a floor that rises with every sweep: sometimes pruned before the read, sometimes not
      const after = Math.max(0, (await headOf(writeUrl)) - 130)
      const s = await RawStream.open(`${readUrl}/subscribe?lastSeq=${after}&live=false&limit=40`)
      const frames = await s.all()
      reads++
      if (frames.some((f) => f.event === 'reset')) resets++
      const gap = gapIn(after, frames)
      if (gap !== undefined) gaps.push(gap)
    }
  }
  await Promise.all([writes, reader(), reader(), reader(), reader()])
  t.ok(reads > 0, `${reads} replays from behind the floor, ${resets} of them reset`)
  t.same(gaps, [], 'no replay skipped an event without a reset before it')

  // The writes are over: once A's last sweep has pruned, B (idle, no retention of its own) must
  // know the floor it left. One user's index: no page of the log that the readers above kept.
  const head = await headOf(writeUrl)
  await until(async () => (await floorOf(writeUrl)) === head - 99, `the floor of ${writeUrl} to reach ${head - 99}`)
  const s = await RawStream.open(`${readUrl}/subscribe/${user.user}/*?lastSeq=0&live=false`)
  const frames = await s.all()
  t.same(frames.filter((f) => f.event === 'reset').map((f) => f.data), [`{"requested":"0","floor":"${head - 99}"}`], 'a replay from 0 on the idle instance opens with one reset, to the floor')
  t.equal(gapIn(0, frames), undefined, 'and has no gap')
  t.equal(frames.filter((f) => f.event === 'PUT').length, 100, 'and every event kept')
}

t.test('readers behind a floor that other writes raise: every gap is announced by a reset', async (t) => {
  if (TEST_ENGINE === 'postgres') {
    if (!(await requirePostgres(t))) return
    const [a, b] = await instances(t, 2, (i): Record<string, string> => (i === 0 ? { EVENT_RETENTION: '100' } : {}))
    await run(t, a!.url, b!.url)
  } else {
    const server = await startTestServer(t, { EVENT_RETENTION: '100' })
    await run(t, server.url, server.url)
  }
})
