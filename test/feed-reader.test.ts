import t, { type Test } from 'tap'
import { ROOT } from '../src/auth/capabilities.js'
import type { HearthEvent } from '../src/events/event.js'
import { EventLog } from '../src/events/event-log.js'
import { LogPages } from '../src/feed/pages.js'
import { LogReader, type ReadSpec } from '../src/feed/reader.js'
import { publicOnly, visibility } from '../src/feed/visibility.js'
import { SUBSCRIBE } from '../src/feed/wire.js'
import type { Store } from '../src/kv/store.js'
import { openTestStore, TEST_ENGINE } from './helpers/engine.js'
import { ALICE, BOB, putEvent, range, within } from './helpers/store-cases/common.js'
import { until } from './helpers/until.js'

/**
 * The log reader under every feed, on the test engine, with no transport: gaps, pruning while
 * it reads (by another instance on PostgreSQL), the hand-over to live under concurrent
 * writes, and positions that give nothing of a private event away. A small transport here
 * takes at most `room` events a step, as a socket with little room would.
 */

interface Opened {
  store: Store
  log: EventLog
  /** the same storage as another process sees it (PostgreSQL), or the same log (LevelDB) */
  other: EventLog
}

async function open(t: Test): Promise<Opened> {
  const { store, another } = await openTestStore(t)
  const log = await EventLog.open(store)
  t.teardown(() => log.close())
  if (another === undefined) return { store, log, other: log }
  const other = await EventLog.open(await another())
  t.teardown(() => other.close())
  return { store, log, other }
}

/** Commits `paths` as one group of events, as the writer does, and announces them. */
async function write(o: Opened, paths: [user: string, path: string][]): Promise<HearthEvent[]> {
  const events = await o.store.commit(async (tx) => {
    const evs = paths.map(([user, path], i) => putEvent(tx.head + 1 + i, user, path))
    tx.append(evs)
    return evs
  })
  await o.log.publish(events)
  return events
}

type Out = { reset: [number, number] } | { seq: number }

/** A transport that takes `room` events per step, records what it was handed and the marks it could report. */
function transport(log: EventLog, pages: LogPages, spec: ReadSpec, room: () => number) {
  const reader = new LogReader(log, pages, spec)
  const out: Out[] = []
  const marks: number[] = []
  const steps: number[] = []
  let live = false
  const unlisten = log.onAppend((events) => {
    for (const ev of events) {
      if (!live || !reader.takesLive(ev)) continue
      out.push({ seq: ev.seq })
      reader.took(ev.seq)
    }
  })
  const run = async () => {
    for (;;) {
      let left = room()
      let taken = 0
      const all = await reader.step({
        reset: (requested, floor) => void out.push({ reset: [requested, floor] }),
        event: (ev, at) => {
          if (left-- <= 0) return false
          if (!at.frame(SUBSCRIBE).includes(`"seq":"${ev.seq}"`)) throw new Error(`the frame handed with ${ev.seq} is another event's`)
          out.push({ seq: ev.seq })
          taken++
          return true
        },
      })
      steps.push(taken)
      marks.push(reader.mark)
      if (!all) reader.pause()
      if (reader.caughtUp) {
        live = true // the same tick as the check: nothing announced slips between
        return
      }
    }
  }
  return { reader, out, marks, steps, run, stop: () => { unlisten(); reader.close() } }
}

const seqsOf = (out: Out[]) => out.flatMap((o) => ('seq' in o ? [o.seq] : []))

/**
 * Every expected seq up to `head` was handed out once, in order, or lies in a stretch a reset
 * announced (and that stretch was really pruned: below the floor `floorNow` says). Returns the
 * number of resets.
 */
function checkStream(t: Test, out: Out[], expected: (seq: number) => boolean, head: number, floorNow: number, name: string): number {
  let pos = 0
  let resets = 0
  const silent: number[] = []
  for (const o of out) {
    if ('reset' in o) {
      const [requested, floor] = o.reset
      if (requested < pos || floor > floorNow) t.fail(`${name}: reset ${requested}→${floor} after ${pos} (floor now ${floorNow})`)
      pos = floor - 1
      resets++
      continue
    }
    if (o.seq <= pos) t.fail(`${name}: ${o.seq} again or out of order after ${pos}`)
    for (let s = pos + 1; s < o.seq; s++) if (expected(s)) silent.push(s)
    pos = o.seq
  }
  for (let s = pos + 1; s <= head; s++) if (expected(s)) silent.push(s)
  t.same(silent.slice(0, 10), [], `${name}: no event skipped without a reset`)
  return resets
}

const everything: Pick<ReadSpec, 'canSee' | 'accepts'> = { canSee: publicOnly, accepts: () => true }
const owner = visibility({ user: ALICE, capabilities: [ROOT] }, ALICE)

t.test('hands out what the stream may see, once and in order; its positions give nothing away', async (t) => {
  // ALICE's public events with private ones between them, and the same public events alone
  const mixed = await open(t)
  const plain = await open(t)
  const shape = range(1, 700).map((i): [string, string] => (i % 5 === 0 ? [BOB, `/pub/b${i}`] : i % 3 === 0 ? [ALICE, `/priv/p${i}`] : [ALICE, `/pub/a${i}`]))
  for (let i = 0; i < shape.length; i += 50) await write(mixed, shape.slice(i, i + 50))
  const publicShape = shape.filter(([, path]) => !path.startsWith('/priv/'))
  for (let i = 0; i < publicShape.length; i += 50) await write(plain, publicShape.slice(i, i + 50))

  const all = transport(mixed.log, new LogPages(mixed.log), { after: 0, ...everything }, () => 40)
  await within(30_000, all.run(), 'the whole log')
  const want = shape.flatMap(([, path], i) => (path.startsWith('/priv/') ? [] : [i + 1]))
  t.same(seqsOf(all.out), want, 'the whole log: every public event, in order')
  t.equal(all.reader.mark, 700, 'caught up, a reader of the whole log may report the head')

  const mine = transport(mixed.log, new LogPages(mixed.log), { after: 0, onlyUser: ALICE, canSee: owner, accepts: () => true }, () => 40)
  await within(30_000, mine.run(), "the owner's read of ALICE")
  t.same(seqsOf(mine.out), shape.flatMap(([user], i) => (user === ALICE ? [i + 1] : [])), 'her own session: all her events, private ones too')

  const anon = transport(mixed.log, new LogPages(mixed.log), { after: 0, onlyUser: ALICE, ...everything }, () => 40)
  await within(30_000, anon.run(), "an anonymous read of ALICE")
  t.same(seqsOf(anon.out), shape.flatMap(([user, path], i) => (user === ALICE && path.startsWith('/pub/') ? [i + 1] : [])), 'anyone else: her public events')
  t.ok(anon.marks.every((m) => m === 0 || m === 700), `an index read reports no position but the head (${[...new Set(anon.marks)]})`)

  const same = transport(plain.log, new LogPages(plain.log), { after: 0, onlyUser: ALICE, ...everything }, () => 40)
  await within(30_000, same.run(), 'the same read without private events')
  t.same(anon.steps, same.steps, 'each step hands out the same number of events whether or not private ones lie between')
  for (const x of [all, mine, anon, same]) x.stop()
})

t.test('a stretch pruned before it was read is announced by one reset, never skipped', async (t) => {
  const o = await open(t)
  for (let i = 0; i < 6; i++) await write(o, range(1, 100).map((j) => [j % 2 ? ALICE : BOB, `/pub/${i}-${j}`]))
  // the other instance hears of commits a little later: a reader there that starts before it
  // knows of the last one catches up short of it and gets the rest live, after this test looks
  await until(() => o.other.head === 600, 'the other instance knows the head', 30_000, () => o.other.head)
  const r = transport(o.other, new LogPages(o.other), { after: 0, ...everything }, () => 100)
  // the first step takes 99 events; then up to 400 are pruned, by the other instance where there is one
  const first = await r.reader.step({
    reset: () => t.fail('no reset yet'),
    event: (ev) => r.out.length < 99 && r.out.push({ seq: ev.seq }) > 0,
  })
  t.notOk(first, 'the first step stopped where the transport had no more room')
  r.reader.pause()
  await o.log.prune(401, 20)
  await within(30_000, r.run(), 'the read past the pruned stretch')
  const resets = checkStream(t, r.out, () => true, 600, 401, 'after the prune')
  const reset = (r.out.find((x) => 'reset' in x) as { reset: [number, number] } | undefined)?.reset
  if (o.other === o.log) {
    // the pruning process knows its floor: the next read starts there, and says so once
    t.equal(resets, 1, 'one reset')
    t.same(reset, [99, 401], 'from the cursor the stream stood at, to the floor')
    t.same(seqsOf(r.out).slice(99), range(401, 600), 'then every event from the floor on')
  } else {
    // another instance learns the floor from its next read: pages read before the prune (the
    // one read ahead among them) may still be handed out, their events having been there
    t.ok(resets <= 1 && (reset === undefined || reset[1] === 401), `at most one reset, to the floor (${reset})`)
    const upTo = reset?.[0] ?? 600
    t.same(seqsOf(r.out), [...range(1, upTo), ...(reset === undefined ? [] : range(401, 600))], 'every event up to there, then every one from the floor on')
  }
  r.stop()
})

t.test('readers while another instance prunes: every event read or announced pruned', async (t) => {
  const o = await open(t)
  const total = 3000
  for (let first = 1; first <= total; first += 500) await write(o, range(first, first + 499).map((s): [string, string] => [s % 3 ? ALICE : BOB, `/pub/e${s}`]))
  await until(() => o.other.head === total, 'the other instance knows the head', 30_000, () => o.other.head)
  // pruned once before anyone reads, so each reader meets a floor its log may not know yet
  await o.log.prune(101, 50)
  let stop = false
  const pruning = (async () => {
    for (let floor = 150; floor <= total - 200 && !stop; floor += 50) await o.log.prune(floor, 20)
  })()
  const readers = range(1, 4).map((i) => {
    const spec: ReadSpec = i % 2 ? { after: 0, ...everything } : { after: 0, onlyUser: ALICE, ...everything }
    return transport(o.other, new LogPages(o.other), spec, () => 20 + Math.floor(Math.random() * 200))
  })
  await within(60_000, Promise.all(readers.map((r) => r.run())), 'the readers')
  stop = true
  await pruning
  const floorNow = (await o.store.readLog(0, total, 1)).floor
  readers.forEach((r, i) => {
    const mine = r.reader.spec.onlyUser === undefined ? () => true : (s: number) => s % 3 !== 0
    t.ok(checkStream(t, r.out, mine, total, floorNow, `reader ${i}`) >= 1, `reader ${i} was told of the pruned stretch`)
    r.stop()
  })
})

t.test('the hand-over to live under concurrent writes: every event once, in order', async (t) => {
  const o = await open(t)
  const readers: ReturnType<typeof transport>[] = []
  const runs: Promise<void>[] = []
  const bobs = (ev: HearthEvent) => ev.user === BOB
  let head = 0
  for (let i = 0; i < 60; i++) {
    const n = 1 + (i % 7)
    const evs = await write(o, range(1, n).map((j): [string, string] => [(i + j) % 2 ? ALICE : BOB, `/pub/w${i}-${j}`]))
    head = evs.at(-1)!.seq
    if (i % 12 === 0) {
      // a reader of BOB's events starts while the writes go on, reading on the other instance
      const r = transport(o.other, new LogPages(o.other), { after: 0, canSee: publicOnly, accepts: bobs }, () => 5)
      readers.push(r)
      runs.push(r.run())
    }
  }
  await within(30_000, Promise.all(runs), 'the readers catching up')
  const want = (await o.store.readLog(0, head, head)).events.filter(bobs).map((e) => e.seq)
  const last = (r: (typeof readers)[number]) => seqsOf(r.out).at(-1)
  await until(() => readers.every((r) => last(r) === want.at(-1)), "every reader at BOB's last event", 30_000, () => readers.map(last))
  readers.forEach((r, i) => {
    t.same(seqsOf(r.out), want, `reader ${i}: BOB's events, each once, in order, across the hand-over`)
    r.stop()
  })
  t.ok(TEST_ENGINE === 'leveldb' || o.other !== o.log, 'on PostgreSQL the readers read on another instance')
})
