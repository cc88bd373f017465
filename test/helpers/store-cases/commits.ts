import type { Case } from './common.js'
import { seededRandom } from '../random.js'
import { ALICE, BOB, collect, meta, putEvent, range, seqs, writeFile } from './common.js'

/** Commit groups: whole or nothing, gapless seqs, serialised across instances. */
export const commitCases: Record<string, Case> = {
  async 'a commit lands whole: files, usage, events and head together'(t, factory) {
    const { store } = await factory.open(t)
    t.equal(await store.createUser(ALICE, 1), 'created')
    const result = await store.commit(async (tx) => {
      t.equal(tx.head, 0, 'an empty log has head 0')
      tx.putFile(ALICE, '/pub/a', meta(3), Buffer.from('abc'), undefined)
      tx.putFile(ALICE, '/pub/b', meta(0), undefined, undefined)
      tx.setUsage(ALICE, 3)
      tx.append([putEvent(1, ALICE, '/pub/a', 3)])
      tx.append([putEvent(2, ALICE, '/pub/b', 0)])
      return 'done'
    })
    t.equal(result, 'done', 'commit resolves with what work returned')
    t.equal(await store.head(), 2)
    t.same(seqs((await store.readLog(0, 2, 10)).events), [1, 2])
    t.same(await store.fileMeta(ALICE, '/pub/a'), meta(3))
    t.same(Buffer.from((await store.inlineContent(ALICE, '/pub/a'))!), Buffer.from('abc'))
    t.same(Buffer.from((await store.inlineContent(ALICE, '/pub/b'))!), Buffer.alloc(0), 'no inline bytes: empty content')
    t.equal((await store.user(ALICE))!.usage, 3)
  },

  async 'a commit whose work throws lands nothing and uses no seq'(t, factory) {
    const { store } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await writeFile(store, ALICE, '/pub/kept', 2)
    await t.rejects(
      store.commit(async (tx) => {
        tx.putFile(ALICE, '/pub/lost', meta(5), Buffer.alloc(5), undefined)
        tx.deleteFile(ALICE, '/pub/kept', meta(2))
        tx.setUsage(ALICE, 99)
        tx.append([putEvent(tx.head + 1, ALICE, '/pub/lost', 5)])
        throw new Error('refused')
      }),
      { message: 'refused' },
    )
    t.equal(await store.head(), 1)
    t.equal(await store.fileMeta(ALICE, '/pub/lost'), undefined)
    t.ok(await store.fileMeta(ALICE, '/pub/kept'), 'the staged delete did not land')
    t.equal((await store.user(ALICE))!.usage, 2)
    const ev = await writeFile(store, ALICE, '/pub/next')
    t.equal(ev.seq, 2, 'the refused commit took its seq back')
    t.same(seqs((await store.readLog(0, 10, 10)).events), [1, 2])
  },

  async 'an append that skips or repeats a seq is refused whole'(t, factory) {
    const { store } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await writeFile(store, ALICE, '/pub/one')
    for (const seq of [3, 1]) {
      await t.rejects(
        store.commit(async (tx) => {
          tx.putFile(ALICE, '/pub/bad', meta(1), Buffer.alloc(1), undefined)
          tx.append([putEvent(seq, ALICE, '/pub/bad')])
        }),
        `seq ${seq} after head 1 is refused`,
      )
    }
    t.equal(await store.fileMeta(ALICE, '/pub/bad'), undefined)
    t.equal((await writeFile(store, ALICE, '/pub/two')).seq, 2)
    t.same(seqs((await store.readLog(0, 10, 10)).events), [1, 2])
  },

  async 'concurrent commits serialise, each seeing the others, in one instance and across two'(t, factory) {
    const { store: a, second } = await factory.open(t)
    // an engine for one process: its own commits, all at once
    const b = second === undefined ? a : await second()
    await a.createUser(ALICE, 1)
    const counter = '/pub/counter'
    // read-modify-write of one file and of the user's usage: a commit that missed another's
    // would lose an increment
    const bump = (store: typeof a, who: string, i: number) =>
      store.commit(async (tx) => {
        const [[old], [user]] = await Promise.all([tx.files([{ user: ALICE, path: counter }]), tx.users([ALICE])])
        const count = (old?.size ?? 0) + 1
        tx.putFile(ALICE, counter, meta(count), Buffer.alloc(count), old)
        tx.setUsage(ALICE, user!.usage + 1)
        const n = 1 + (i % 3)
        tx.append(range(1, n).map((k) => putEvent(tx.head + k, ALICE, `/pub/${who}/${i}/${k}`)))
        return { head: tx.head, n, count }
      })
    const N = 30
    const done = await Promise.all([...range(1, N).map((i) => bump(a, 'a', i)), ...range(1, N).map((i) => bump(b, 'b', i))])
    t.equal((await a.fileMeta(ALICE, counter))!.size, 2 * N, 'no increment lost: every commit saw every earlier one')
    t.equal((await b.user(ALICE))!.usage, 2 * N, 'nor any usage')
    done.sort((x, y) => x.head - y.head)
    let head = 0
    for (const [i, d] of done.entries()) {
      if (d.head !== head || d.count !== i + 1) return t.fail(`commit ${i + 1} saw head ${d.head} and count ${d.count - 1}, expected ${head} and ${i}`)
      head += d.n
    }
    t.pass('each commit started at the head the previous one left: commit order is seq order')
    t.equal(await a.head(), head)
    t.equal(await b.head(), head)
    const log = (await b.readLog(0, head, head + 1)).events
    t.same(seqs(log), range(1, head), 'gapless, each seq once')
    t.equal(new Set(log.map((e) => e.path)).size, head, 'each event once')
  },

  async 'reads inside a commit: files, users and how many files lie under a folder'(t, factory) {
    const { store } = await factory.open(t)
    await store.createUser(ALICE, 5)
    await store.createUser(BOB, 6)
    for (const p of ['/pub/d/x', '/pub/d/sub/y', '/pub/d-e', '/pub/d0', '/pub/d/\u{1F600}', '/pub/d/\u{E000}']) await writeFile(store, ALICE, p)
    await writeFile(store, BOB, '/pub/d/bob')
    await store.commit(async (tx) => {
      const files = await tx.files([
        { user: ALICE, path: '/pub/d/x' },
        { user: BOB, path: '/pub/d/x' },
        { user: BOB, path: '/pub/d/bob' },
      ])
      t.same(files, [meta(1, { seq: 1 }), undefined, meta(1, { seq: 7 })], 'in the order asked, undefined where absent')
      t.same(await tx.users([BOB, 'n'.repeat(52), ALICE]), [
        { createdAt: 6, usage: 1 },
        undefined,
        { createdAt: 5, usage: 6 },
      ])
      const under = (user: string, path: string) => ({ user, path })
      t.same(await tx.countUnder([under(ALICE, '/pub/d'), under(ALICE, '/pub/d/sub'), under(ALICE, '/pub/d/x'), under(BOB, '/pub/d')], 10), [4, 1, 0, 1], 'files below each folder, not beside it (d-e, d0), only the user\'s own')
      t.same(await tx.countUnder([under(ALICE, '/pub/d')], 2), [2], 'capped')
      t.same(await tx.countUnder([], 2), [])
      t.same(await tx.files([]), [])
      t.same(await tx.users([]), [])
    })
  },

  async 'files below a folder stay counted as commits add and remove them, deep and shallow'(t, factory) {
    let { store, reopen } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await store.createUser(BOB, 1)
    const rand = seededRandom(0xf01d)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
    // a narrow tree, so files meet, folders empty and fill again, and chains grow 12 deep
    const randomPath = () => '/pub' + Array.from({ length: 1 + Math.floor(rand() * 12) }, () => '/' + pick(['a', 'b'])).join('')
    const model = new Map<string, string>() // file key → user, of the files stored
    const folders = new Set<string>()
    const below = (user: string, folder: string) => [...model.keys()].filter((k) => k.startsWith(user + folder + '/')).length
    const check = async (s: typeof store, when: string) => {
      const asked = [...folders].map((k) => ({ user: k.slice(0, 52), path: k.slice(52) }))
      const [all, capped] = await s.commit((tx) => Promise.all([tx.countUnder(asked, 1000), tx.countUnder(asked, 2)]))
      const wrong = asked.flatMap((f, i) => (all[i] === below(f.user, f.path) && capped[i] === Math.min(2, all[i]!) ? [] : [`${f.path}: ${all[i]}, capped ${capped[i]}`]))
      t.same(wrong, [], `${when}: every folder counts the files below it`)
    }
    for (let round = 0; round < 150; round++) {
      await store.commit(async (tx) => {
        const staged = new Map(model)
        for (let n = 1 + Math.floor(rand() * 6); n > 0; n--) {
          const user = rand() < 0.8 ? ALICE : BOB
          const path = randomPath()
          const key = user + path
          // some commits read the folders first, as the clash check does, and some do not
          if (rand() < 0.5) await tx.countUnder([{ user, path: path.slice(0, path.lastIndexOf('/')) }, { user, path }], 1 + Math.floor(rand() * 3))
          if (staged.has(key)) {
            if (rand() < 0.7) {
              tx.deleteFile(user, path, meta(1))
              staged.delete(key)
            } else tx.putFile(user, path, meta(2), Buffer.alloc(2), meta(1))
            continue
          }
          // no file where a folder is, nor a folder where a file is
          const clash = [...staged.keys()].some((k) => k.startsWith(key + '/') || key.startsWith(k + '/'))
          if (clash) continue
          tx.putFile(user, path, meta(1), Buffer.alloc(1), undefined)
          staged.set(key, user)
        }
        model.clear()
        for (const [k, v] of staged) model.set(k, v)
      })
      // the folders the clash check asks about: those below the root (`/pub`)
      for (const k of model.keys()) for (let at = k.indexOf('/', 57); at !== -1; at = k.indexOf('/', at + 1)) folders.add(k.slice(0, at))
      if (round % 30 === 29) await check(store, `after commit ${round + 1}`)
    }
    t.ok(folders.size > 20 && model.size > 5, `${folders.size} folders seen, ${model.size} files left`)
    if (reopen === undefined) return
    store = await reopen()
    await check(store, 'reopened')
  },

  async 'file keys list in byte order, past U+FFFF too, forward and back, in pages'(t, factory) {
    const { store } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await store.createUser(BOB, 1)
    const paths = ['/pub/a/z', '/pub/a/\u{E000}', '/pub/a/\u{1F600}', '/pub/a/é', '/pub/a/B', '/pub/a-b', '/pub/a0', '/pub/a/b/c', '/pub/a/A']
    // more keys than any engine would fetch in one page
    const many = range(1, 1200).map((i) => `/pub/m/${String(i).padStart(4, '0')}`)
    await store.commit(async (tx) => {
      for (const p of [...paths, ...many]) tx.putFile(ALICE, p, meta(1), Buffer.alloc(1), undefined)
      tx.putFile(BOB, '/pub/a/bob', meta(1), Buffer.alloc(1), undefined)
    })
    const alice = [...paths, ...many].map((p) => ALICE + p).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    t.same(await collect(store.fileKeys({ gt: ALICE + '/', lt: ALICE + '0' })), alice, 'byte order')
    t.same(await collect(store.fileKeys({ gt: ALICE + '/', lt: ALICE + '0', reverse: true })), [...alice].reverse(), 'reverse')
    t.same(await collect(store.fileKeys({ gte: ALICE, limit: 1100 })), alice.slice(0, 1100), 'limit across pages')
    t.same(await collect(store.fileKeys({ lte: ALICE + '0', reverse: true, limit: 1100 })), [...alice].reverse().slice(0, 1100), 'reverse limit across pages')
    t.same(await collect(store.fileKeys({})), [BOB + '/pub/a/bob', ...alice], 'every key, users in byte order')
    const a = ALICE + '/pub/a/'
    t.same(await collect(store.fileKeys({ gte: a, lt: a.slice(0, -1) + '0' })), alice.filter((k) => k.startsWith(a)), 'one folder')
    t.same(await collect(store.fileKeys({ gt: a + 'z', lte: a + '\u{1F600}' })), [a + 'é', a + '\u{E000}', a + '\u{1F600}'], 'bounds past the BMP: gt excludes, lte includes')
    t.same(await collect(store.fileKeys({ gte: a + 'z', lt: a + '\u{E000}' })), [a + 'z', a + 'é'], 'gte includes, lt excludes')
  },

  async 'log reads page forward and back, globally and per user'(t, factory) {
    const { store } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await store.createUser(BOB, 1)
    const events = []
    for (const i of range(1, 9)) events.push(await writeFile(store, i % 3 === 0 ? BOB : ALICE, `/pub/f${i}`, i))
    events.push(
      await store.commit(async (tx) => {
        const [old] = await tx.files([{ user: ALICE, path: '/pub/f1' }])
        tx.deleteFile(ALICE, '/pub/f1', old!)
        const ev = { seq: tx.head + 1, type: 'DEL' as const, user: ALICE, path: '/pub/f1', ts: 5 }
        tx.append([ev])
        return ev
      }),
    )
    t.same((await store.readLog(0, 10, 100)).events, events, 'events read back as appended, DEL without hash or size')
    t.same(seqs((await store.readLog(2, 7, 3)).events), [3, 4, 5])
    t.same(seqs((await store.readLog(7, 7, 3)).events), [])
    t.same(seqs(await store.readLogReverse(8, 3)), [7, 6, 5])
    t.same(seqs(await store.readLogReverse(11, 100)), range(1, 10).reverse())
    t.same(seqs((await store.readUserLog(BOB, 0, 10, 100)).events), [3, 6, 9])
    t.same(seqs((await store.readUserLog(ALICE, 2, 8, 2)).events), [4, 5])
    t.same(seqs((await store.readUserLog(ALICE, 0, 10, 100)).events), [1, 2, 4, 5, 7, 8, 10])
    t.same(seqs(await store.readUserLogReverse(ALICE, 7, 3)), [5, 4, 2])
    t.same(seqs(await store.readUserLogReverse(BOB, 3, 3)), [])
    t.equal(await store.fileMeta(ALICE, '/pub/f1'), undefined, 'the delete landed')
    t.equal(await store.inlineContent(ALICE, '/pub/f1'), undefined)
  },

  async 'a log read gives as many events as asked, however many that is'(t, factory) {
    const { store } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await store.createUser(BOB, 1)
    // more events than one native read step of an engine takes, in commits of 500
    const total = 2600
    for (let first = 1; first <= total; first += 500) {
      await store.commit(async (tx) => {
        tx.append(range(first, Math.min(first + 499, total)).map((seq) => putEvent(seq, seq % 2 === 0 ? BOB : ALICE, `/pub/e${seq}`)))
      })
    }
    t.same(seqs((await store.readLog(0, total, 1e9)).events), range(1, total), 'a limit far past the log reads the log, in order')
    t.same(seqs((await store.readLog(100, total, 2000)).events), range(101, 2100), 'a limit past one step is met exactly')
    t.same(seqs(await store.readLogReverse(total + 1, 1e9)), range(1, total).reverse())
    t.same(seqs((await store.readUserLog(BOB, 0, total, 1e9)).events), range(1, total / 2).map((i) => 2 * i))
    t.same(seqs(await store.readUserLogReverse(ALICE, total + 1, 1e9)), range(1, total / 2).map((i) => 2 * i - 1).reverse())
  },

  async 'the floor only rises, and pruning removes what is below it'(t, factory) {
    const { store, second } = await factory.open(t)
    await store.createUser(ALICE, 1)
    for (const i of range(1, 10)) await writeFile(store, ALICE, `/pub/f${i}`)
    t.equal(await store.floor(), 1, 'nothing pruned: floor 1')
    t.equal(await store.raiseFloor(6), 6)
    t.equal(await store.raiseFloor(3), 6, 'never lowered')
    t.equal(await store.floor(), 6)
    t.equal(await store.pruneBelowFloor(3), 3)
    t.equal(await store.pruneBelowFloor(3), 2)
    t.equal(await store.pruneBelowFloor(3), 0, 'nothing left below the floor')
    t.same(seqs((await store.readLog(0, 10, 100)).events), range(6, 10))
    t.equal(await store.head(), 10, 'pruning leaves the head')
    t.equal((await writeFile(store, ALICE, '/pub/next')).seq, 11)
    if (second === undefined) return
    const b = await second()
    await Promise.all([store.raiseFloor(8), b.raiseFloor(9), store.raiseFloor(7)])
    t.equal(await store.floor(), 9, 'raised from two instances at once: the highest stays')
    t.equal(await b.floor(), 9)
  },

  async 'watch hears the commits of another instance'(t, factory) {
    const { store: a, second } = await factory.open(t)
    if (second === undefined) return t.plan(0, 'the engine serves one process')
    const b = await second()
    await a.createUser(ALICE, 1)
    const heard: (number | undefined)[] = []
    let wake = () => {}
    const stop = b.watch((head) => {
      heard.push(head)
      wake()
    })
    t.teardown(stop)
    const until = async (head: number) => {
      const deadline = Date.now() + 10_000
      while (!heard.some((h) => h !== undefined && h >= head)) {
        if (Date.now() > deadline) throw new Error(`no watch call with head ≥ ${head} within 10 s; heard ${JSON.stringify(heard)}`)
        await new Promise<void>((resolve) => {
          wake = resolve
          setTimeout(resolve, 200)
        })
      }
    }
    await writeFile(a, ALICE, '/pub/one')
    await until(1)
    await writeFile(a, ALICE, '/pub/two')
    await writeFile(a, ALICE, '/pub/three')
    await until(3)
    const heads = heard.filter((h): h is number => h !== undefined)
    t.same(heads, [...heads].sort((x, y) => x - y), 'heads heard in increasing order')
    t.equal(new Set(heads).size, heads.length, 'each head once')
    t.same(seqs((await b.readLog(0, 3, 10)).events), [1, 2, 3], 'what it heard of is there to read')
  },
}
