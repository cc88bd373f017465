import { isDeepStrictEqual } from 'node:util'
import type { ConsumerRecord, Store } from '../../../src/kv/store.js'
import type { Case } from './common.js'
import { ALICE, BOB } from './common.js'

/** A consumer's record as the Store keeps it, with `extra` over the defaults. */
export function consumerRecord(owner: string, id: string, extra: Partial<ConsumerRecord> = {}): ConsumerRecord {
  return {
    owner, id, createdAt: 1_700_000_000_000, capabilities: '/:rw', cursor: 0, outstanding: [], dead: [],
    definition: { filters: ['*'], from: 'start', ack: 'explicit', ackWaitMs: 30_000, maxDeliver: 5, maxPending: 1000, shareProgress: false },
    ...extra,
  }
}

export const ID1 = '01JF0000000000000000000001'
const ID2 = '01JF0000000000000000000002'
const ID3 = '01JF0000000000000000000003'

/** Durable consumers (SPEC §12): records per owner, the cap, and changes made under a lock. */
export const consumerCases: Record<string, Case> = {
  async 'consumers are created once per owner and id, up to the cap, and kept'(t, factory) {
    const { store, reopen } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await store.createUser(BOB, 1)
    t.equal(await store.createConsumer(consumerRecord(ALICE, ID1), 2), 'created')
    t.equal(await store.createConsumer(consumerRecord(ALICE, ID1, { cursor: 9 }), 2), 'exists', 'the same id again')
    t.equal((await store.consumer(ALICE, ID1))!.cursor, 0, 'and the first one is untouched')
    t.equal(await store.createConsumer(consumerRecord(BOB, ID1), 2), 'created', 'ids are unique per owner')
    t.equal(await store.createConsumer(consumerRecord(ALICE, ID2), 2), 'created')
    t.equal(await store.createConsumer(consumerRecord(ALICE, ID3), 2), 'full', 'past the cap')
    t.same((await store.consumers(ALICE)).map((c) => c.id), [ID1, ID2], "the owner's, by id")
    t.same((await store.consumers(BOB)).map((c) => c.owner), [BOB])
    t.equal(await store.consumer(BOB, ID2), undefined)
    t.equal(await store.deleteConsumer(ALICE, ID1), true)
    t.equal(await store.deleteConsumer(ALICE, ID1), false, 'once')
    t.equal(await store.createConsumer(consumerRecord(ALICE, ID3), 2), 'created', 'a deletion makes room')
    if (reopen === undefined) return
    const again = await reopen()
    t.same(await again.consumer(ALICE, ID3), consumerRecord(ALICE, ID3), 'kept across a reopen, whole')
    t.same((await again.consumers(ALICE)).map((c) => c.id), [ID2, ID3])
  },

  async 'a change stores the record it returns, or nothing'(t, factory) {
    const { store, reopen } = await factory.open(t)
    await store.createUser(ALICE, 1)
    t.equal(await store.updateConsumer(ALICE, ID1, () => ({ result: 1 })), undefined, 'no such consumer')
    await store.createConsumer(consumerRecord(ALICE, ID1), 10)
    const leased = { seq: 3, user: BOB, deliveries: 1, holder: 'a', deadline: 5 }
    const done = await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, cursor: 3, outstanding: [leased] }, result: 'claimed' }))
    t.equal(done?.result, 'claimed')
    t.same((await store.consumer(ALICE, ID1))!.outstanding, [leased], 'the lease is stored')
    await store.updateConsumer(ALICE, ID1, (r) => ({ result: r.cursor }))
    t.equal((await store.consumer(ALICE, ID1))!.cursor, 3, 'a change without a record leaves it')
    await t.rejects(store.updateConsumer(ALICE, ID1, () => {
      throw new Error('refused')
    }), { message: 'refused' })
    t.equal((await store.consumer(ALICE, ID1))!.cursor, 3, 'a change that throws stores nothing')
    if (reopen === undefined) return
    t.same((await (await reopen()).consumer(ALICE, ID1))!.outstanding, [leased], 'kept across a reopen')
  },

  async 'changes to one consumer never interleave, also from two instances'(t, factory) {
    const { store, second } = await factory.open(t)
    const other = second === undefined ? store : await second()
    await store.createUser(ALICE, 1)
    await store.createConsumer(consumerRecord(ALICE, ID1), 10)
    // each change claims the next seq as a lease: a lost update would claim one twice
    const claim = (s: typeof store, holder: string) =>
      s.updateConsumer(ALICE, ID1, (r) => {
        const seq = r.cursor + 1
        return { record: { ...r, cursor: seq, outstanding: [...r.outstanding, { seq, user: ALICE, deliveries: 1, holder }] }, result: seq }
      })
    const got = await Promise.all(Array.from({ length: 40 }, (_, i) => claim(i % 2 === 0 ? store : other, `h${i % 2}`)))
    t.same(got.map((g) => g!.result).sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i + 1), 'each seq claimed once')
    const r = (await other.consumer(ALICE, ID1))!
    t.equal(r.outstanding.length, 40, 'no update lost')
  },

  async 'a change that touches some outstanding events keeps the others, seen alike by a reopen and by another instance'(t, factory) {
    const { store, second, reopen } = await factory.open(t)
    await store.createUser(ALICE, 1)
    const waiting = (seq: number) => ({ seq, user: seq % 2 === 0 ? ALICE : BOB, deliveries: 0 })
    await store.createConsumer(consumerRecord(ALICE, ID1, { cursor: 6, outstanding: [1, 2, 3, 4, 5, 6].map(waiting) }), 10)
    const other = second === undefined ? undefined : await second()
    // each instance reads it, then the other changes it: neither may go on from what it read
    await other?.consumer(ALICE, ID1)
    await store.updateConsumer(ALICE, ID1, (r) => ({
      // 2 leased, 4 acked, 7 and 8 read; 1, 3, 5 and 6 untouched (the same objects)
      record: { ...r, cursor: 8, outstanding: [r.outstanding[0]!, { ...r.outstanding[1]!, deliveries: 1, holder: 'a', deadline: 9 }, r.outstanding[2]!, r.outstanding[4]!, r.outstanding[5]!, waiting(7), waiting(8)] },
      result: undefined,
    }))
    const expected = [waiting(1), { ...waiting(2), deliveries: 1, holder: 'a', deadline: 9 }, waiting(3), waiting(5), waiting(6), waiting(7), waiting(8)]
    t.same((await store.consumer(ALICE, ID1))!.outstanding, expected, 'the change, whole')
    if (other !== undefined) {
      t.same((await other.consumer(ALICE, ID1))!.outstanding, expected, 'another instance reads the change')
      await other.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, outstanding: r.outstanding.filter((e) => e.seq !== 1 && e.seq !== 7) }, result: undefined }))
      const done = await store.updateConsumer(ALICE, ID1, (r) => ({ result: r.outstanding.map((e) => e.seq) }))
      t.same(done?.result, [2, 3, 5, 6, 8], "a change here starts from the other's")
      t.same((await store.consumer(ALICE, ID1))!.outstanding.map((e) => e.seq), [2, 3, 5, 6, 8], "and this one reads the other's")
    }
    if (reopen === undefined) return
    const seqs = other === undefined ? [1, 2, 3, 5, 6, 7, 8] : [2, 3, 5, 6, 8]
    const again = (await (await reopen()).consumer(ALICE, ID1))!
    t.same(again.outstanding.map((e) => e.seq), seqs, 'kept across a reopen')
    t.same(again.outstanding.find((e) => e.seq === 2), expected[1], 'with the lease')
    t.equal(again.cursor, 8)
  },

  async 'the cap holds when two instances create at once'(t, factory) {
    const { store, second } = await factory.open(t)
    const other = second === undefined ? store : await second()
    await store.createUser(ALICE, 1)
    const ids = Array.from({ length: 12 }, (_, i) => `01JF00000000000000000001${String(i).padStart(2, '0')}`)
    const results = await Promise.all(ids.map((id, i) => (i % 2 === 0 ? store : other).createConsumer(consumerRecord(ALICE, id), 5)))
    t.equal(results.filter((r) => r === 'created').length, 5, 'exactly the cap')
    t.equal((await store.consumers(ALICE)).length, 5)
  },

  async 'a consumer deleted and made again under its id is read afresh by an instance that knew the one before'(t, factory) {
    const { store, second } = await factory.open(t)
    await store.createUser(ALICE, 1)
    const other = second === undefined ? store : await second()
    const entry = (seq: number) => ({ seq, user: BOB, deliveries: 0 })
    // made again in the same millisecond: its createdAt tells it from the one before no better than its id
    await store.createConsumer(consumerRecord(ALICE, ID1, { createdAt: 1 }), 10)
    for (let n = 1; n <= 3; n++) await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, cursor: n, outstanding: [...r.outstanding, entry(n)] }, result: undefined }))
    t.equal((await other.consumer(ALICE, ID1))!.outstanding.length, 3, 'known by the other instance')
    await store.deleteConsumer(ALICE, ID1)
    await store.createConsumer(consumerRecord(ALICE, ID1, { createdAt: 1 }), 10)
    for (let n = 1; n <= 4; n++) await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, cursor: 10 + n, outstanding: n === 4 ? [entry(14)] : [] }, result: undefined }))
    const again = consumerRecord(ALICE, ID1, { createdAt: 1, cursor: 14, outstanding: [entry(14)] })
    t.same(await other.consumer(ALICE, ID1), again, 'the new one, read')
    await other.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, cursor: 15 }, result: undefined }))
    t.same(await store.consumer(ALICE, ID1), { ...again, cursor: 15 }, 'and changed from what it is')
  },

  async 'a record read back after a long run of changes of every kind is the one last stored'(t, factory) {
    const { store, reopen, second } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await store.createConsumer(consumerRecord(ALICE, ID1), 10)
    let current = store
    // with another instance, one change in three is made there: each catches up on the other's
    const other = second === undefined ? undefined : await second()
    let expected = (await store.consumer(ALICE, ID1))!
    // enough changes to fill a journal twice over (JOURNAL_MOST), read back on the way
    const random = seeded(23)
    let mismatches = 0
    let stale = 0
    for (let step = 1; step <= 150; step++) {
      const next = changeOf(expected, random, step)
      const writer = other !== undefined && step % 3 === 0 ? other : current
      await writer.updateConsumer(ALICE, ID1, (seen) => {
        if (!isDeepStrictEqual(seen, expected)) stale++
        return { record: next, result: undefined }
      })
      if (next !== undefined) expected = next
      if (step % 15 !== 0) continue
      const readBack = async (reader: Store) => void (isDeepStrictEqual(await reader.consumer(ALICE, ID1), expected) || mismatches++)
      await readBack(current)
      if (other !== undefined) await readBack(other)
      if (reopen !== undefined) await readBack((current = await reopen()))
      if (second !== undefined) await readBack(await second())
    }
    t.same(await current.consumer(ALICE, ID1), expected, 'the last record, read back')
    t.equal(stale, 0, 'each change started from the record as the change before left it, on either instance')
    t.equal(mismatches, 0, 'and every record read back on the way: by each instance, after a reopen, by a new instance')
  },
}

/** A pseudo-random change of `r` (none, one time in ten), as the ledger makes them: new objects for what it changes, the rest kept. */
function changeOf(r: ConsumerRecord, random: () => number, step: number): ConsumerRecord | undefined {
  const users = [ALICE, BOB, 'carol', 'dave']
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!
  // each change touches few of the entries: most outlive a LevelDB fold untouched
  const some = () => random() < 0.05
  switch (Math.floor(random() * 10)) {
    case 0:
      return undefined
    case 1:
    case 2: {
      // events read into it: the cursor moves past them
      const read = Array.from({ length: 1 + Math.floor(random() * 8) }, (_, i) => ({ seq: r.cursor + 1 + i * 2, user: pick(users), deliveries: 0 }))
      return { ...r, cursor: read.at(-1)!.seq + Math.floor(random() * 3), outstanding: [...r.outstanding, ...read] }
    }
    case 3:
    case 4:
      // leases
      return { ...r, outstanding: r.outstanding.map((e) => (e.holder === undefined && some() ? { ...e, deliveries: e.deliveries + 1, holder: `h/${step}`, deadline: 1_000 + step } : e)) }
    case 5:
    case 6:
      // acks
      return { ...r, outstanding: r.outstanding.filter(() => !some()) }
    case 7:
      // holds ended
      return { ...r, outstanding: r.outstanding.map((e) => (e.holder !== undefined && some() ? { seq: e.seq, user: e.user, deliveries: e.deliveries } : e)) }
    case 8: {
      // the first one dead
      const first = r.outstanding[0]
      if (first === undefined) return { ...r, cursor: r.cursor + 1 }
      return { ...r, outstanding: r.outstanding.slice(1), dead: [...r.dead, { seq: first.seq, deliveries: first.deliveries, reason: 'term' }] }
    }
    default:
      // the cursor alone, or a reset
      return random() < 0.5 ? { ...r, cursor: r.cursor + 5 } : { ...r, reset: { requested: r.cursor, floor: r.cursor + 2 } }
  }
}

function seeded(seed: number): () => number {
  let s = seed
  return () => ((s = (s * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648)
}

