import t from 'tap'
import { tempDir } from './helpers/server.js'
import { runStalled } from './helpers/stalled-harness.js'

// 200 streams, 20 of which stop reading (raw sockets, never read) while ~150 events a second
// are written, half of them with ~8 KB frames, so each stalled socket is sent far more than
// the kernel holds. The server (a child process) must stay within a bounded memory, keep the
// live readers whole, and give every stalled reader that resumes every event, in order.
t.test('stalled readers cost bounded memory and, once resumed, miss nothing', async (t) => {
  const { figures, violations } = await runStalled({
    dataDir: tempDir(t, 'hearth-stalled-'),
    streams: 200,
    stalled: 20,
    seconds: 20,
    // a busy machine writes slower: at least 1,000 large frames (~8 MB)
    minEvents: 2000,
    // and on, until the readers stalled to the end have each backed up past the kernel's
    // buffers, however large this machine makes them
    minBehind: 10,
    progress: (line) => t.comment(line),
  })
  t.comment(JSON.stringify(figures))
  t.same(violations, [], 'every reader got exactly its events, in order')
  t.equal(figures.stalledComplete, 20, 'every stalled reader caught up once resumed')
  t.equal(figures.liveComplete, 180, 'every live reader got everything')
  // the server's own word that the run pushed stalled sockets past what the kernel buffers: when
  // the writes stopped, the 10 readers stalled to the end were off the live path
  t.ok(figures.behindAtEnd >= 10, `streams off the live path when the writes stopped: ${figures.behindAtEnd} (each reader stalled to the end was sent ${figures.stalledBytesEachMb} MB)`)
  // generous: V8 grows its heap lazily; unbounded per-stream buffers would blow past this
  t.ok(figures.rssGrowthMb < 200, `server RSS grew ${figures.rssGrowthMb} MB while streams were stalled`)
})
