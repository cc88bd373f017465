import t from 'tap'
import { EventCache } from '../src/consumers/event-cache.js'
import type { HearthEvent } from '../src/events/event.js'

/** The events a consumer's run keeps for delivery (src/consumers/event-cache.ts), where no route reaches them alone. */

const event = (seq: number, path = `/pub/x/${seq}`): HearthEvent => ({ seq, type: 'PUT', user: 'u', path, ts: 0 } as unknown as HearthEvent)

t.test('events are found by seq whatever order they came in; keep leaves only the seqs named', async (t) => {
  const cache = new EventCache()
  for (const seq of [3, 5, 9]) cache.add(event(seq))
  // a reset moves the cursor back: events read again come before those kept
  cache.add(event(1))
  cache.add(event(4))
  cache.add(event(5, '/pub/again'))
  t.same([1, 2, 3, 4, 5, 9, 10].map((seq) => cache.get(seq)?.seq), [1, undefined, 3, 4, 5, 9, undefined], 'each found where it is, none where none was added')
  t.equal(cache.get(5)?.path, '/pub/again', 'an event added again replaces the one kept')
  t.equal(cache.size, 5)
  cache.keep([{ seq: 2 }, { seq: 4 }, { seq: 9 }, { seq: 12 }])
  t.same([1, 3, 4, 5, 9].map((seq) => cache.get(seq)?.seq), [undefined, undefined, 4, undefined, 9], 'what keep names and the cache held stays')
  t.equal(cache.size, 2)
})
