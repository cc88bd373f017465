import t, { type Test } from 'tap'
import { join } from 'node:path'
import { JOURNAL_MOST, changeText, decodeEntry, encodeEntry, hex, journalEntry, outstandingChanges, replayChanges } from '../src/kv/consumer-parts.js'
import { decodeRow } from '../src/kv/level/consumers.js'
import { LevelKV } from '../src/kv/level/level-map.js'
import type { BatchOp } from '../src/kv/level/ordered-map.js'
import { LevelStore } from '../src/kv/level/store.js'
import { ALICE, BOB, deleteFile, writeFile } from './helpers/store-cases/common.js'
import { ID1, consumerRecord } from './helpers/store-cases/consumers.js'
import { tempDir } from './helpers/server.js'
import { storeConformance, type StoreFactory } from './helpers/store-conformance.js'

/** The LevelDB engine against the one conformance suite (one process: no `second`). */
const factory: StoreFactory = {
  name: 'leveldb',
  async open(t) {
    const dir = tempDir(t, 'hearth-store-')
    let { store } = await LevelStore.open(dir)
    t.teardown(() => store.close())
    return {
      store,
      async reopen() {
        await store.close()
        ;({ store } = await LevelStore.open(dir))
        return store
      },
    }
  },
}

storeConformance(t, factory)

/** A consumer's row key, as LevelDB stores it. */
const row = (seq: number) => `${ALICE}:${ID1}:${seq.toString(16).padStart(16, '0')}`

t.test('a data folder with an older folder index gets it rebuilt at open', async (t) => {
  const dir = tempDir(t, 'hearth-store-')
  const { store } = await LevelStore.open(dir)
  await store.createUser(ALICE, 1)
  const deep = '/pub/a/b/c/d/e/f'
  for (const path of [`${deep}/1`, `${deep}/2`, '/pub/a/b/x', '/pub/a/y']) await writeFile(store, ALICE, path)
  await store.close()
  // the index as an older version left it: another layout name, counts that mean something else
  const kv = new LevelKV(join(dir, 'db'))
  await kv.open()
  const stale: BatchOp[] = [{ type: 'put', ns: 'meta', key: 'folders', value: 'sha1-v2' }]
  for await (const key of kv.keys('folders', {})) stale.push({ type: 'put', ns: 'folders', key, value: '7' })
  await kv.batch(stale, { sync: true })
  await kv.close()

  const { store: reopened } = await LevelStore.open(dir)
  t.teardown(() => reopened.close())
  const folders = ['/pub/a', '/pub/a/b', '/pub/a/b/c', deep, '/pub/a/y', '/pub/z']
  const counts = await reopened.commit((tx) => tx.countUnder(folders.map((path) => ({ user: ALICE, path })), 100))
  t.same(counts, [4, 3, 2, 2, 0, 0], 'each folder counts the files below it again')
  await deleteFile(reopened, ALICE, `${deep}/1`)
  await deleteFile(reopened, ALICE, `${deep}/2`)
  const after = await reopened.commit((tx) => tx.countUnder(folders.map((path) => ({ user: ALICE, path })), 100))
  t.same(after, [2, 1, 0, 0, 0, 0], 'and the rebuilt counts follow later commits: the emptied chain is gone')
})

t.test("a consumer stored whole, as an older version kept it, is split into its parts at open and changes on", async (t) => {
  const dir = tempDir(t, 'hearth-store-')
  const kv = new LevelKV(join(dir, 'db'))
  await kv.open()
  const outstanding = [{ seq: 4, user: BOB, deliveries: 1, holder: 'a', deadline: 9 }, { seq: 5, user: ALICE, deliveries: 0 }]
  const old = consumerRecord(ALICE, ID1, { cursor: 5, outstanding, dead: [{ seq: 2, deliveries: 5, reason: 'maxDeliver' }] })
  await kv.batch([{ type: 'put', ns: 'consumers', key: `${ALICE}:${ID1}`, value: JSON.stringify(old) }], { sync: true })
  await kv.close()

  let { store } = await LevelStore.open(dir)
  t.same(await store.consumer(ALICE, ID1), old, 'read whole')
  await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, outstanding: r.outstanding.slice(1) }, result: undefined }))
  await store.close()
  ;({ store } = await LevelStore.open(dir))
  t.teardown(() => store.close())
  t.same(await store.consumer(ALICE, ID1), { ...old, outstanding: outstanding.slice(1) }, 'and the change of its parts kept')
})

t.test("a consumer's rows an older version wrote, JSON and short, are read, and the first fold of its journal replaces them", async (t) => {
  const dir = tempDir(t, 'hearth-store-')
  const kv = new LevelKV(join(dir, 'db'))
  await kv.open()
  const outstanding = [{ seq: 4, user: BOB, deliveries: 1, holder: 'a/1', deadline: 9 }, { seq: 5, user: ALICE, deliveries: 0 }, { seq: 17, user: BOB, deliveries: 2 }]
  const { outstanding: _, ...head } = consumerRecord(ALICE, ID1, { cursor: 17, outstanding })
  await kv.batch([
    { type: 'put', ns: 'consumers', key: `${ALICE}:${ID1}`, value: JSON.stringify(head) },
    { type: 'put', ns: 'consumerEvents', key: row(4), value: JSON.stringify(outstanding[0]) },
    { type: 'put', ns: 'consumerEvents', key: row(5), value: encodeEntry(outstanding[1]!) },
    { type: 'put', ns: 'consumerEvents', key: row(17), value: JSON.stringify(outstanding[2]) },
  ], { sync: true })
  await kv.close()

  let { store } = await LevelStore.open(dir)
  t.same(await store.consumer(ALICE, ID1), { ...head, outstanding }, 'read as written')
  // changes of entry 5 until the journal is folded
  let leased = outstanding[1]!
  const change = async (n: number) => {
    leased = { seq: 5, user: ALICE, deliveries: 1, holder: 'b/2', deadline: 20 + n }
    await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, outstanding: [r.outstanding[0]!, leased, r.outstanding[2]!] }, result: undefined }))
  }
  for (let n = 1; n <= JOURNAL_MOST; n++) await change(n)
  await store.close()
  t.same((await keysOf(dir)).rows, 3, 'the rows stay while the journal grows')
  ;({ store } = await LevelStore.open(dir))
  t.same(await store.consumer(ALICE, ID1), { ...head, outstanding: [outstanding[0], leased, outstanding[2]] }, 'read back: the rows, then the journal')
  await change(JOURNAL_MOST + 1)
  await store.close()
  t.same(await keysOf(dir), { rows: 0, snapshot: 1, journal: 0 }, 'the fold replaced the rows with a snapshot')
  ;({ store } = await LevelStore.open(dir))
  t.teardown(() => store.close())
  t.same(await store.consumer(ALICE, ID1), { ...head, outstanding: [outstanding[0], leased, outstanding[2]] }, 'and read back from it')
})

t.test("a consumer's change is one journal entry, whatever it touched, until the journal is folded into a snapshot", async (t) => {
  const dir = tempDir(t, 'hearth-store-')
  let { store } = await LevelStore.open(dir)
  await store.createConsumer(consumerRecord(ALICE, ID1), 10)
  const read = Array.from({ length: 100 }, (_, i) => ({ seq: i + 1, user: i % 2 === 0 ? ALICE : BOB, deliveries: 0 }))
  await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, cursor: 100, outstanding: read }, result: undefined }))
  const leased = read.map((e) => ({ ...e, deliveries: 1, holder: 'h', deadline: 50 }))
  for (let n = 2; n <= JOURNAL_MOST; n++) {
    // alternately leased and handed back: every entry changes each time
    await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, outstanding: n % 2 === 0 ? leased : read }, result: undefined }))
  }
  await store.close()
  t.same(await keysOf(dir), { rows: 0, snapshot: 1, journal: JOURNAL_MOST }, 'each change wrote one journal entry (the snapshot is the creation\'s)')
  ;({ store } = await LevelStore.open(dir))
  t.same((await store.consumer(ALICE, ID1))!.outstanding, JOURNAL_MOST % 2 === 0 ? leased : read, 'read back through the journal')
  await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, outstanding: r.outstanding.slice(40) }, result: undefined }))
  await store.close()
  t.same(await keysOf(dir), { rows: 0, snapshot: 1, journal: 0 }, 'the change past JOURNAL_MOST folded the journal into the snapshot')
  ;({ store } = await LevelStore.open(dir))
  t.teardown(() => store.close())
  t.same((await store.consumer(ALICE, ID1))!.outstanding, (JOURNAL_MOST % 2 === 0 ? leased : read).slice(40), 'and read back from it')
})

t.test("a consumer's entry in its short form comes back whole, out or not, as a line and as an older version's row", async (t) => {
  for (const e of [{ seq: 31, user: BOB, deliveries: 0 }, { seq: 31, user: BOB, deliveries: 3, holder: 'Ab-_9/12', deadline: 1_789_000_000_000 }, { seq: 31, user: 'a user with spaces', deliveries: 1 }]) {
    t.same(decodeEntry(31, encodeEntry(e)), e, encodeEntry(e))
    t.same(decodeRow(row(31), encodeEntry(e)), e, 'as a row')
  }
  const record = consumerRecord(ALICE, ID1)
  t.same(replayChanges(record, [changeText(9, [{ seq: 31, user: BOB, deliveries: 1, holder: 'h/1', deadline: 5 }], []), changeText(10, [], [31])]), { ...record, cursor: 10 }, 'lines put and take out')
  t.throws(() => replayChanges(record, ['c3\n+1f 0   x\n1f 0   y\n']), /a line that is not one/, 'a line of no kind is refused, not passed over')
})

t.test("a change's text stores a hold without the entry's user, and replays to the record it came from", async (t) => {
  const record = consumerRecord(ALICE, ID1)
  const before = { ...record, cursor: 13, outstanding: [
    { seq: 10, user: BOB, deliveries: 0 },
    { seq: 11, user: ALICE, deliveries: 2 },
    { seq: 12, user: BOB, deliveries: 1, holder: 'h/1', deadline: 5 },
    { seq: 13, user: ALICE, deliveries: 1, holder: 'h/2', deadline: 5 },
  ] }
  const after = { ...record, cursor: 14, outstanding: [
    { seq: 10, user: BOB, deliveries: 1, holder: 'h/1', deadline: 9 },
    { seq: 11, user: ALICE, deliveries: 3, holder: 'h/2', deadline: 9 },
    { seq: 13, user: ALICE, deliveries: 1 },
    { seq: 14, user: BOB, deliveries: 0 },
  ] }
  const { text } = journalEntry(before, after)
  t.same(replayChanges(before, [text!]), after, 'read, leased to two streams, acked, handed back')
  t.equal(text!.split(BOB).length - 1, 1, 'only the entry read names its user')
  t.match(text!, /^h9 h\/1\n~a 1$/m, "a stream's holds share one line of deadline and holder")
  t.throws(() => replayChanges(record, ['c3\nh9 h/1\n~1f 1\n']), /never put/, 'a hold of an entry never put is refused')
  t.throws(() => replayChanges(record, ['c3\n+1f 0   x\n~1f 1\n']), /a line that is not one/, 'as is a hold with no line of its holder')
})

t.test("a change's seqs are written in hex as Number's toString(16) writes them, and lists out of order are compared whole", async (t) => {
  const seqs = [0, 1, 15, 16, 255, 256, 4095, 65_535, 65_536, 0xdead_beef, 2 ** 32, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER]
  for (let s = 1; s < 5_000_000; s = Math.ceil(s * 1.37) + 1) seqs.push(s)
  t.same(seqs.filter((s) => hex(s) !== s.toString(16)), [], `${seqs.length} seqs`)
  t.same([NaN, -1, 1.5, Infinity].map(hex), ['NaN', '-1', '1.8', 'Infinity'], 'what no log holds is written as toString(16) writes it, not looped over')
  const e = (seq: number, deliveries = 0) => ({ seq, user: BOB, deliveries })
  // no change of the ledger makes a list out of seq order: the merge notices one, from either side, and compares by seq
  const sorted = [e(1), e(2), e(3)]
  const shuffled = [e(3), e(1), e(2, 1)]
  for (const [before, after] of [[sorted, shuffled], [shuffled, sorted], [[e(1), e(1)], [e(1)]]] as const) {
    const { put, del } = outstandingChanges(before, after)
    const old = new Map(before.map((x) => [x.seq, x]))
    t.same(put.map((x) => x.seq).sort(), after.filter((x) => old.get(x.seq)?.deliveries !== x.deliveries).map((x) => x.seq).sort(), 'put: what differs')
    t.same(del, before.filter((x) => !after.some((y) => y.seq === x.seq)).map((x) => x.seq), 'del: what left')
  }
})

/** How many rows, snapshots and journal entries of consumer ID1 the data folder holds. */
async function keysOf(dir: string): Promise<{ rows: number; snapshot: number; journal: number }> {
  const raw = new LevelKV(join(dir, 'db'))
  await raw.open()
  const keys: string[] = []
  for await (const key of raw.keys('consumerEvents', {})) keys.push(key)
  await raw.close()
  const count = (mark: string) => keys.filter((k) => k.startsWith(`${ALICE}:${ID1}${mark}`)).length
  return { rows: count(':'), snapshot: count('='), journal: count('!') }
}

/** A LevelDB of file keys in byte order past U+FFFF, which JavaScript orders otherwise. */
async function kvOfKeys(t: Test): Promise<LevelKV> {
  const kv = new LevelKV(join(tempDir(t, 'hearth-kv-'), 'db'))
  await kv.open()
  t.teardown(() => kv.close())
  const keys = ['a/x', 'a/y/z', 'a-b', 'a0', 'a/\u{E000}', 'a/\u{1F600}', 'a\u{E000}/q', 'a\u{1F600}/q']
  await kv.batch(keys.map((key) => ({ type: 'put', ns: 'files', key, value: '{}' })))
  return kv
}

t.test('a range counter counts by prefix, in byte order, and refuses to count once closed', async (t) => {
  const kv = await kvOfKeys(t)
  const counter = kv.rangeCounter('files')
  t.equal(await counter.count('a/', 10), 4, 'the keys below a/: not a-b nor a0')
  t.equal(await counter.count('a/', 2), 2, 'capped')
  // U+E000 sorts after the surrogates of U+1F600 in JavaScript, before them in UTF-8
  t.equal(await counter.count('a\u{E000}/', 10), 1)
  t.equal(await counter.count('a\u{1F600}/', 10), 1)
  t.equal(await counter.count('b/', 10), 0, 'past the last key')
  await counter.close()
  await t.rejects(counter.count('a/', 10), { message: 'range counter used after close' })
})

t.test("a read view's pages come from one iterator, sought to each range, ending in byte order", async (t) => {
  const kv = await kvOfKeys(t)
  const snapshot = kv.snapshot()
  const pages = kv.viewPages('files', snapshot)
  const keysOf = async (range: Record<string, string>, limit: number) => (await pages.page(range, limit)).map(([key]) => key)
  t.same(await keysOf({ gte: 'a/', lt: 'a0' }, 2), ['a/x', 'a/y/z'])
  t.same(await keysOf({ gt: 'a/y/z', lt: 'a0' }, 2), ['a/\u{E000}', 'a/\u{1F600}'], 'on from the last key, in UTF-8 order')
  t.same(await keysOf({ gt: 'a/\u{1F600}', lt: 'a0' }, 2), [], 'the range ends before a0')
  // U+1F600 sorts before U+E000 in JavaScript, after it in UTF-8
  t.same(await keysOf({ gte: 'a\u{E000}', lt: 'a\u{1F600}' }, 10), ['a\u{E000}/q'], 'a range that ends at U+1F600 holds U+E000')
  t.same(await keysOf({}, 3), ['a-b', 'a/x', 'a/y/z'], 'back to the start')
  t.same(await keysOf({ gt: 'a/', lt: 'a0' }, 1), ['a/x'], 'after a key that is not there')
  t.same(await keysOf({ gt: 'a/x', lt: 'a0' }, 1), ['a/y/z'], 'and on from there')
  await kv.batch([{ type: 'put', ns: 'files', key: 'a/w', value: '{}' }])
  t.same(await keysOf({ gte: 'a/', lte: 'a/x' }, 10), ['a/x'], 'as of the snapshot: not what was written after it')
  await pages.close()
  await t.rejects(pages.page({}, 1), { message: 'read view used after close' })
  await snapshot.close()
})
