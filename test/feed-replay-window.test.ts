import t from 'tap'
import { REPLAY_WINDOW, ReplayWindow } from '../src/feed/replay-window.js'
import { HIGH_WATER } from '../src/feed/sse.js'

// Streams that read the log share one window of unsent bytes: a few each get the whole
// HIGH_WATER (a lone replay batches as before), many get equal shares of the window.

t.test('shares of the replay window', async (t) => {
  const window = new ReplayWindow()
  t.equal(window.share(), HIGH_WATER, 'no stream reading: the full high-water mark')
  window.enter()
  t.equal(window.share(), HIGH_WATER, 'a lone replay keeps the full high-water mark')
  const few = REPLAY_WINDOW / HIGH_WATER
  for (let i = 1; i < few; i++) window.enter()
  t.equal(window.share(), HIGH_WATER, `${few} streams still do`)
  for (let i = few; i < 1000; i++) window.enter()
  t.equal(window.streams, 1000)
  t.equal(window.share(), Math.floor(REPLAY_WINDOW / 1000), 'a thousand share the window')
  t.ok(window.share() * window.streams <= REPLAY_WINDOW, 'and hold no more than it between them')
  for (let i = 1; i < 1000; i++) window.leave()
  t.equal(window.share(), HIGH_WATER, 'the share grows back as streams turn live or end')
})
