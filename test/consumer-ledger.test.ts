import t from 'tap'
import { read, READ_AHEAD } from '../src/consumers/ledger.js'
import { ALICE, BOB } from './helpers/store-cases/common.js'
import { ID1, consumerRecord } from './helpers/store-cases/consumers.js'

/** The pure rules of a consumer's record (src/consumers/ledger.ts) where no route reaches them alone. */

t.test('read: events after the cursor are taken up to the room; with no room for the first, nothing moves, a reset included', async (t) => {
  const full = consumerRecord(ALICE, ID1, {
    cursor: 10,
    definition: { ...consumerRecord(ALICE, ID1).definition, maxPending: 2 },
    outstanding: [{ seq: 9, user: ALICE, deliveries: 1, holder: 'a/1', deadline: 5 }, { seq: 10, user: BOB, deliveries: 0 }],
  })
  const events = [{ seq: 14, user: ALICE }, { seq: 15, user: BOB }]
  const reset = { requested: 10, floor: 14 }
  t.equal(read(full, 10, 15, events, reset), full, 'no room: the same record, no reset stored, the cursor where it was')
  const roomy = { ...full, definition: { ...full.definition, maxPending: 3 } }
  const one = read(roomy, 10, 15, events, reset)
  t.same(one.outstanding.map((e) => e.seq), [9, 10, 14], 'room for one: the first taken')
  t.equal(one.cursor, 14, 'the cursor at the last taken, so the next read starts after it')
  t.same(one.reset, reset, 'and the reset stored with the events it came with')
  t.equal(read(roomy, 9, 15, events), roomy, 'read from another cursor: nothing taken')
  const passed = read(full, 10, 30, [])
  t.equal(passed.cursor, 30, 'no matching events: the cursor passes what did not match, room or none')
  t.ok(READ_AHEAD > 0)
})
