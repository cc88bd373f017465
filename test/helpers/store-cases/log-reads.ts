import type { LogRead } from '../../../src/kv/store.js'
import type { Case } from './common.js'
import { ALICE, BOB, putEvent, range, seqs } from './common.js'

/**
 * Log reads, the seam every feed stands on: each page comes with the floor of its own
 * snapshot, so no reader on any instance can miss a pruned event without knowing it.
 */
export const logReadCases: Record<string, Case> = {
  async 'a log read brings the floor of its own snapshot'(t, factory) {
    const { store, second } = await factory.open(t)
    await store.commit(async (tx) => tx.append(range(1, 20).map((seq) => putEvent(seq, seq % 2 ? ALICE : BOB, `/pub/e${seq}`))))
    t.same(await store.readLog(0, 20, 5), { events: (await store.readLog(0, 5, 100)).events, floor: 1 })
    t.equal((await store.readLog(20, 20, 5)).floor, 1, 'an empty read still says where the floor is')
    await store.raiseFloor(8)
    await store.pruneBelowFloor(100)
    const after = await store.readLog(0, 20, 5)
    t.same([seqs(after.events), after.floor], [range(8, 12), 8], 'a read from below the floor finds it raised')
    const user = await store.readUserLog(BOB, 0, 20, 3)
    t.same([seqs(user.events), user.floor], [[8, 10, 12], 8], "and so does a read of one user's index")
    if (second === undefined) return
    const b = await second()
    await b.raiseFloor(15)
    t.equal((await store.readLog(0, 20, 5)).floor, 15, 'raised by another instance: the next read knows it')
    t.equal((await store.readUserLog(ALICE, 0, 20, 5)).floor, 15)
  },

  async 'no read misses an event without its floor saying so, while another instance prunes'(t, factory) {
    const { store, second } = await factory.open(t)
    const total = 3000
    for (let first = 1; first <= total; first += 500) {
      await store.commit(async (tx) => tx.append(range(first, first + 499).map((seq) => putEvent(seq, seq % 3 ? ALICE : BOB, `/pub/e${seq}`))))
    }
    const pruner = second === undefined ? store : await second()
    let done = false
    // the pruner raises the floor and deletes in small chunks, as retention does, until the end
    const pruning = (async () => {
      for (let floor = 50; floor <= total - 100 && !done; floor += 50) {
        await pruner.raiseFloor(floor)
        while ((await pruner.pruneBelowFloor(20)) > 0) {}
      }
      done = true
    })()
    let reads = 0
    let silent = 0
    const alices = (seq: number) => seq % 3 !== 0
    // every event of the source in (after, last] that a read left out must lie below its floor
    const check = (after: number, page: LogRead, mine: (seq: number) => boolean) => {
      reads++
      const got = new Set(seqs(page.events))
      const last = page.events.at(-1)?.seq ?? after
      for (let seq = after + 1; seq <= last; seq++) if (mine(seq) && seq >= page.floor && !got.has(seq)) silent++
    }
    // readers at cursors below the floor, on the whole log and on one user's index, many at once
    const reader = async (after: number) => {
      while (!done) {
        check(after, await store.readLog(after, total, 64), () => true)
        check(after, await store.readUserLog(ALICE, after, total, 64), alices)
      }
    }
    await Promise.all([0, 40, 500, 1400, 2000, 2500].map(reader))
    await pruning
    t.ok(reads > 0, `${reads} reads raced the pruning`)
    t.equal(silent, 0, 'every read that missed events had a floor above them')
  },

  async "a read of one user's index can keep only the paths under a root, and counts only those"(t, factory) {
    const { store } = await factory.open(t)
    const paths = range(1, 30).map((seq) => (seq % 3 === 0 ? `/priv/p${seq}` : `/pub/e${seq}`))
    await store.commit(async (tx) => tx.append(paths.map((path, i) => putEvent(i + 1, ALICE, path))))
    const pub = paths.flatMap((p, i) => (p.startsWith('/pub/') ? [i + 1] : []))
    t.same(seqs((await store.readUserLog(ALICE, 0, 30, 5, '/pub/')).events), pub.slice(0, 5), 'the first five public events')
    t.same(seqs((await store.readUserLog(ALICE, 10, 30, 100, '/pub/')).events), pub.filter((s) => s > 10))
    t.same(seqs(await store.readUserLogReverse(ALICE, 31, 4, '/pub/')), pub.slice(-4).reverse(), 'and backwards')
    t.same(seqs((await store.readUserLog(ALICE, 0, 30, 100)).events), range(1, 30), 'without a root: everything')
  },
}
