import t from 'tap'
import { backoffDelay, sleep, type Backoff } from 'hearth-homeserver-client/backoff'

const LOWEST = () => 0
const HIGHEST = () => 1 - Number.EPSILON

t.test('without jitter each wait doubles from the base until the cap, then stays there', async (t) => {
  const fixed: Backoff = { baseMs: 50, maxMs: 2000, jitter: 0 }
  const waits = Array.from({ length: 9 }, (_, attempt) => backoffDelay(fixed, attempt, Math.random))
  t.same(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000])
  t.equal(backoffDelay(fixed, 1e9), 2000, 'any number of attempts meets the cap, never Infinity')
  t.equal(backoffDelay({ ...fixed, baseMs: 0 }, 1e9), 0, 'a base of 0 waits 0 however often it failed, never NaN')
})

t.test('full jitter: anywhere in [0, ceiling), the ceiling growing as without jitter', async (t) => {
  const full: Backoff = { baseMs: 1000, maxMs: 30_000, jitter: 1 }
  for (let attempt = 0; attempt < 40; attempt++) {
    const ceiling = Math.min(30_000, 1000 * 2 ** attempt)
    t.equal(backoffDelay(full, attempt, LOWEST), 0, `attempt ${attempt} may retry at once`)
    const high = backoffDelay(full, attempt, HIGHEST)
    t.ok(high < ceiling && high > ceiling * 0.99, `attempt ${attempt} waits less than ${ceiling}, up to just below it`)
  }
})

t.test('half jitter: in [ceiling/2, ceiling), and the draws fill the range', async (t) => {
  const half: Backoff = { baseMs: 500, maxMs: 300_000, jitter: 0.5 }
  const waits = Array.from({ length: 2000 }, () => backoffDelay(half, 3))
  t.same(waits.filter((w) => w < 2000 || w >= 4000), [], 'every wait in [2000, 4000)')
  t.ok(Math.min(...waits) < 2100 && Math.max(...waits) > 3900, 'drawn across the range, not fixed')
  t.equal(backoffDelay(half, 3, LOWEST), 2000)
})

t.test('sleep ends early when its signal aborts, and at once when it already has', async (t) => {
  const stop = new AbortController()
  const slept = sleep(3_600_000, stop.signal)
  stop.abort()
  await slept
  await sleep(3_600_000, stop.signal)
  t.pass('neither waited the hour')
})
