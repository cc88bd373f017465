import t from 'tap'
import { acknowledge, claim, pruned, read, READ_AHEAD, release, settle, tally, type Acks, type Delivered } from '../src/consumers/ledger.js'
import { LedgerIndex } from '../src/consumers/ledger-index.js'
import { seededRandom } from './helpers/random.js'
import type { ConsumerRecord, Outstanding } from '../src/kv/consumer-record.js'
import { ALICE, BOB } from './helpers/store-cases/common.js'
import { ID1, consumerRecord } from './helpers/store-cases/consumers.js'

/** The pure rules of a consumer's record (src/consumers/ledger.ts) where no route reaches them alone. */

/** `n` events of `user` waiting to go out, the last at seq `last`. */
const waiting = (n: number, last: number, user = ALICE): Outstanding[] =>
  Array.from({ length: n }, (_, i) => ({ seq: last - n + 1 + i, user, deliveries: 0 }))

t.test('read: events after the cursor are taken up to the room; with no room for the first, nothing moves, a reset included', async (t) => {
  const held = { seq: 1, user: BOB, deliveries: 1, holder: 'a/1', deadline: 5 }
  const full = consumerRecord(ALICE, ID1, { cursor: 10_000, outstanding: [held, ...waiting(READ_AHEAD, 10_000)] })
  const events = [{ seq: 10_004, user: ALICE }, { seq: 10_005, user: BOB }]
  const reset = { requested: 10_000, floor: 10_004 }
  t.equal(read(full, 10_000, 10_005, events, reset), full, 'READ_AHEAD waiting: the same record, no reset stored, the cursor where it was')
  const roomy = { ...full, outstanding: [held, ...waiting(READ_AHEAD - 1, 10_000)] }
  const one = read(roomy, 10_000, 10_005, events, reset)
  t.same(one.outstanding.slice(-2).map((e) => e.seq), [10_000, 10_004], 'room for one: the first taken')
  t.equal(one.cursor, 10_004, 'the cursor at the last taken, so the next read starts after it')
  t.same(one.reset, reset, 'and the reset stored with the events it came with')
  t.equal(read(roomy, 9, 10_005, events), roomy, 'read from another cursor: nothing taken')
  const passed = read(full, 10_000, 10_030, [])
  t.equal(passed.cursor, 10_030, 'no matching events: the cursor passes what did not match, room or none')
})

t.test('maxPending bounds the events out, not those read: one user filling it leaves room to read and lease the next user', async (t) => {
  const definition = { ...consumerRecord(ALICE, ID1).definition, maxPending: 3 }
  const alices = consumerRecord(ALICE, ID1, { cursor: 3, definition, outstanding: waiting(3, 3) })
  const both = read(alices, 3, 4, [{ seq: 4, user: BOB }])
  t.same(both.outstanding.map((e) => e.seq), [1, 2, 3, 4], "Bob's event read past Alice's three")
  const leased = claim(both, [{ holder: 'a/1', n: 3 }, { holder: 'a/2', n: 3 }], 100)
  t.same(leased.claimed.map((e) => `${e.seq} ${e.holder}`), ['1 a/1', '4 a/2'], "Alice's first and Bob's, in parallel")
  const bobs = read(leased.record, 4, 7, [{ seq: 5, user: BOB }, { seq: 6, user: '3' }, { seq: 7, user: '4' }])
  const capped = claim(bobs, [{ holder: 'a/1', n: 9 }], 100)
  t.same(capped.claimed.map((e) => e.seq), [6], 'two out, so one more: maxPending caps the events out')
  t.same(claim(capped.record, [{ holder: 'a/1', n: 9 }], 100).claimed, [], 'none while three are out')
})

t.test('the index each change hands on (ledger-index.ts) is the one a pass over its record builds, over random changes on both ack policies', async (t) => {
  // a step counts what it changes rather than passing over the record: whatever order reads,
  // leases, acks, naks, terms, ended holds and ended streams come in, what it keeps must be
  // what a new pass finds, or a lease would go to an event out already, or never go
  let checked = 0
  let handedOn = 0
  const mismatches: string[] = []
  for (const ack of ['explicit', 'automatic'] as const) {
    for (let seed = 1; seed <= 20; seed++) {
      const rand = seededRandom(seed)
      const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)]!
      const definition = { ...consumerRecord(ALICE, ID1).definition, ack, maxDeliver: 3, maxPending: 1 + Math.floor(rand() * 8) }
      let r = consumerRecord(ALICE, ID1, { definition })
      let before = tally(r)
      let now = 1000
      for (let step = 0; step < 300; step++) {
        const op = rand()
        const seqs = () => r.outstanding.filter(() => rand() < 0.3)
        if (op < 0.25) {
          const events = Array.from({ length: Math.floor(rand() * 4) }, (_, i) => ({ seq: r.cursor + 1 + i, user: pick(['u1', 'u2', 'u3', 'u4']) }))
          r = read(r, r.cursor, r.cursor + events.length + 1, events)
        } else if (op < 0.5) {
          r = claim(r, [{ holder: 'h1', n: Math.floor(rand() * 4) }, { holder: 'h2', n: Math.floor(rand() * 4) }], now + 1 + Math.floor(rand() * 50)).record
        } else if (op < 0.75) {
          const kind = pick(['ack', 'nak', 'term'] as const)
          const named = seqs().map((e) => (kind === 'ack' ? e.seq : { seq: e.seq, ...(rand() < 0.5 ? { deliveries: e.deliveries } : {}) }))
          r = acknowledge(r, { [kind]: named }).record
        } else if (op < 0.9) {
          now += Math.floor(rand() * 30)
          r = settle(r, now).record
        } else if (op < 0.95) {
          r = release(r, pick(['h1', 'h2']))
        } else {
          r = pruned(r, new Set(seqs().map((e) => e.seq)), r.cursor)
        }
        const kept = tally(r) as LedgerIndex
        if (kept === before) handedOn++
        before = kept
        const fresh = new LedgerIndex(r)
        const counts = (x: LedgerIndex) => JSON.stringify({ waiting: x.waiting, out: x.out, pending: x.pending, redelivered: x.redelivered, exhausted: x.exhausted, held: [...x.held].sort(), ready: x.ready })
        if (counts(kept) !== counts(fresh)) mismatches.push(`${ack}, seed ${seed}, step ${step}: kept ${counts(kept)}, a pass finds ${counts(fresh)}`)
        // the soonest deadline may be kept early (a bound, made exact by settle), never late
        else if (fresh.deadline !== undefined && !(kept.deadline! <= fresh.deadline)) mismatches.push(`${ack}, seed ${seed}, step ${step}: deadline kept late, ${kept.deadline} > ${fresh.deadline}`)
        checked++
      }
    }
  }
  t.same(mismatches.slice(0, 3), [], 'no step keeps an index other than its record\'s')
  t.equal(checked, 2 * 20 * 300, 'every step checked')
  t.ok(handedOn > checked / 2, `most steps hand the index on rather than leave it to be built (${handedOn} of ${checked})`)
})

t.test('a record no change makes, two events of one user out at once (stored by other rules), still acks and leases', async (t) => {
  const out = (seq: number, user: string) => ({ seq, user, deliveries: 1, holder: 'h1', deadline: 10_000 })
  const r = consumerRecord(ALICE, ID1, { cursor: 9, outstanding: [out(5, 'u'), { seq: 6, user: 'v', deliveries: 0 }, out(7, 'u')] })
  tally(r)
  const acked = acknowledge(r, { ack: [5], term: [{ seq: 7 }] }).record
  t.same(acked.outstanding.map((e) => e.seq), [6], "both of u's left")
  t.same(claim(acked, [{ holder: 'h2', n: 5 }], 20_000).claimed.map((e) => e.seq), [6], "v's event goes out, and nothing of u's")
})

t.test('one ack request naming events in any order, twice, and under several kinds: term over ack over nak, each event once', async (t) => {
  // what acknowledge must do, written as plainly as it can be: each event out that a kind
  // names (a nak or term only for the delivery it names, when it names one) becomes the
  // strongest kind naming it; events not out are passed over
  const expected = (r: ConsumerRecord, acks: Acks) => {
    const valid = (d: Delivered) => r.outstanding.some((e) => e.seq === d.seq && e.deliveries > 0 && (d.deliveries === undefined || d.deliveries === e.deliveries))
    const fate = (e: Outstanding) =>
      (acks.term ?? []).some((d) => d.seq === e.seq && valid(d)) ? 'term'
      : (acks.ack ?? []).some((seq) => seq === e.seq && valid({ seq })) ? 'ack'
      : (acks.nak ?? []).some((d) => d.seq === e.seq && valid(d)) ? 'nak' : undefined
    const outstanding = r.outstanding.flatMap((e) => {
      const f = fate(e)
      return f === undefined ? [e] : f === 'nak' ? [{ seq: e.seq, user: e.user, deliveries: e.deliveries }] : []
    })
    return { outstanding, acked: r.outstanding.filter((e) => fate(e) === 'ack').length, dead: r.outstanding.filter((e) => fate(e) === 'term').map((e) => e.seq) }
  }
  const wrong: string[] = []
  for (let seed = 1; seed <= 300; seed++) {
    const rand = seededRandom(seed)
    const outstanding = Array.from({ length: 1 + Math.floor(rand() * 12) }, (_, i): Outstanding => {
      const deliveries = Math.floor(rand() * 3)
      return deliveries === 0 ? { seq: 2 * i + 1, user: 'u', deliveries } : { seq: 2 * i + 1, user: `u${i}`, deliveries, holder: 'h1', deadline: 10_000 }
    })
    const r = consumerRecord(ALICE, ID1, { cursor: 40, outstanding })
    // seqs of events out, waiting, and never read (even), in random order, some twice
    const some = () => Array.from({ length: Math.floor(rand() * 6) }, () => 1 + Math.floor(rand() * 26))
    const named = () => some().map((seq) => (rand() < 0.5 ? { seq } : { seq, deliveries: Math.floor(rand() * 3) }))
    const acks: Acks = { ack: some(), nak: named(), term: named() }
    const got = acknowledge(r, acks)
    const want = expected(r, acks)
    const seen = { outstanding: got.record.outstanding, acked: got.acked, dead: got.dead.map((d) => d.seq) }
    if (JSON.stringify(seen) !== JSON.stringify(want)) wrong.push(`seed ${seed}: ${JSON.stringify(acks)} gave ${JSON.stringify(seen)}, not ${JSON.stringify(want)}`)
  }
  t.same(wrong.slice(0, 2), [], 'every request does what its names say')
})
