import t from 'tap'
import { AckWindow } from 'hearth-homeserver-client/ack-window'

t.test('scanned positions behind an unacked event are kept as one, and the cursor waits for the event', async (t) => {
  const w = new AckWindow(0n)
  const first = w.deliver(1n)
  let moved = 0
  for (let seq = 2n; seq <= 10_000n; seq++) if (w.pass(seq)) moved++
  t.equal(moved, 0, 'no scanned position moved the cursor')
  t.equal(w.held, 2, 'the event and one run of scanned positions')
  t.equal(w.cursor, 0n, 'nothing moves past an unacked event')
  const second = w.deliver(10_001n)
  w.pass(10_002n)
  t.equal(w.held, 4)
  t.equal(w.ack(second), false, 'an ack out of order moves nothing yet')
  t.equal(w.ack(first), true)
  t.equal(w.cursor, 10_002n, 'then everything up to the last scanned position')
  t.equal(w.held, 0)
  t.equal(w.unacked, 0)
})
