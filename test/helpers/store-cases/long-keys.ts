import type { Test } from 'tap'
import type { Store } from '../../../src/kv/store.js'
import { MAX_PATH_BYTES, MAX_SEGMENTS } from '../../../src/paths.js'
import { PathMaker } from '../long-paths.js'
import type { Case } from './common.js'
import { ALICE, BOB, byteOrder, collect, meta, putEvent, range, seqs } from './common.js'

const bytes = (s: string) => Buffer.byteLength(s)

/** A user's file keys read in pages of `n` with an exclusive cursor, as a client pages a listing. */
async function paged(store: Store, user: string, n: number, reverse = false): Promise<string[]> {
  const [lo, hi] = [user + '/', user + '0']
  const out: string[] = []
  for (;;) {
    const cursor = out.at(-1)
    const range = reverse ? { gt: lo, lt: cursor ?? hi, reverse, limit: n } : { gt: cursor ?? lo, lt: hi, limit: n }
    const page = await collect(store.fileKeys(range))
    out.push(...page)
    if (page.length < n) return out
    if (out.length > 10_000) throw new Error(`paging in pages of ${n} does not end`)
  }
}

/** Stores `paths` for `user` in commits of 200, a PUT event each; sizes follow the paths' order. */
async function storeAll(store: Store, user: string, paths: readonly string[]): Promise<void> {
  for (let at = 0; at < paths.length; at += 200) {
    await store.commit(async (tx) => {
      paths.slice(at, at + 200).forEach((path, i) => {
        const size = (at + i) % 50
        tx.putFile(user, path, meta(size), Buffer.alloc(size, at + i), undefined)
        tx.append([putEvent(tx.head + i + 1, user, path, size)])
      })
    })
  }
}

/** `keys` are ALICE's: listed whole both ways, and in pages of each size given. */
async function checkListed(t: Test, store: Store, keys: readonly string[], when: string, pages: number[]): Promise<void> {
  const all = [...keys].sort(byteOrder)
  t.same(await collect(store.fileKeys({ gt: ALICE + '/', lt: ALICE + '0' })), all, `${when}: byte order`)
  t.same(await collect(store.fileKeys({ gt: ALICE + '/', lt: ALICE + '0', reverse: true })), [...all].reverse(), `${when}: reverse`)
  for (const n of pages) {
    t.same(await paged(store, ALICE, n), all, `${when}: in pages of ${n}`)
    t.same(await paged(store, ALICE, n, true), [...all].reverse(), `${when}: in pages of ${n}, reverse`)
  }
}

/** Paths up to the longest SPEC §2 allows, in random letters and characters of several bytes. */
export const longKeyCases: Record<string, Case> = {
  async 'the longest allowed paths are stored, read, listed in pages and deleted, hundreds in one folder'(t, factory) {
    let { store, reopen } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await store.createUser(BOB, 1)
    const make = new PathMaker(0x4096)
    const longest = [make.path('/pub', MAX_PATH_BYTES), make.path('/pub', MAX_PATH_BYTES, MAX_SEGMENTS - 1), make.path('/priv', MAX_PATH_BYTES)]
    // a folder 3.8 KB deep: its files' keys share their first 3.8 KB and differ after
    const deep = make.path('/pub/deep', 3800)
    const inDeep = range(1, 600).map((i) => make.path(deep, bytes(deep) + 9 + ((i * 37) % 240)))
    // a folder 2 KB deep: its files' keys end on either side of 2 KiB; some share a long
    // beginning, and a character of 4 bytes lies across every offset near 2 KiB
    const mid = make.path('/pub/mid', 1990)
    const shared = make.segment(40)
    const nearMid = [
      ...range(1, 40).map((i) => (i % 3 === 0 ? `${mid}/${shared}${make.segment(i)}` : make.path(mid, bytes(mid) + 1 + i))),
      ...range(0, 12).map((i) => `${mid}/${'x'.repeat(i)}😀é`),
    ]
    const paths = [...longest, ...inDeep, ...nearMid, '/pub/short']
    await storeAll(store, ALICE, paths)
    await storeAll(store, BOB, inDeep.slice(0, 3))
    const head = await store.head()
    t.equal(head, paths.length + 3)

    const sizes = new Map(paths.map((p, i) => [p, i % 50]))
    const wrong: string[] = []
    for (const [path, size] of sizes) {
      const [m, content] = await Promise.all([store.fileMeta(ALICE, path), store.inlineContent(ALICE, path)])
      if (m?.size !== size || content?.length !== size) wrong.push(`${bytes(path)} bytes: ${JSON.stringify(m)}`)
    }
    t.same(wrong, [], 'every file reads back its own metadata and content')
    t.equal(await store.fileMeta(ALICE, deep + '/absent'), undefined)
    t.equal(await store.fileMeta(BOB, inDeep[5]!), undefined, "another user's file")

    await checkListed(t, store, paths.map((p) => ALICE + p), 'stored', [7, 250])
    const deepKeys = inDeep.map((p) => ALICE + p).sort(byteOrder)
    const [lo, hi] = [deepKeys[100]!, deepKeys[400]!]
    t.same(await collect(store.fileKeys({ gte: lo, lt: hi })), deepKeys.slice(100, 400), 'bounds within the deep folder')
    t.same(await collect(store.fileKeys({ gt: lo, lte: hi, reverse: true, limit: 120 })), deepKeys.slice(101, 401).reverse().slice(0, 120), 'reverse, limited')
    t.same(await collect(store.fileKeys({ gt: ALICE + deep + '/', lt: ALICE + deep + '0' })), deepKeys, 'the deep folder alone')
    t.same(await collect(store.fileKeys({ gt: hi, lt: lo })), [], 'an empty range')

    const folders = [deep, mid, '/pub/deep', deep + '/absent', inDeep[0]!, `${mid}/${shared}`].map((path) => ({ user: ALICE, path }))
    const counts = await store.commit((tx) => Promise.all([tx.countUnder(folders, 1000), tx.countUnder(folders, 2)]))
    t.same(counts, [[600, nearMid.length, 600, 0, 0, 0], [2, 2, 2, 0, 0, 0]], 'files below each folder, capped')

    const under = (await store.readUserLog(ALICE, 0, head, 1000, deep + '/')).events
    t.same(under.map((e) => e.path), inDeep, 'the user log under the deep folder: its events alone')
    t.same(seqs(await store.readUserLogReverse(ALICE, head + 1, 5, deep + '/')), seqs(under.slice(-5)).reverse())
    t.same(seqs(await store.readUserLogReverse(BOB, head + 1, 5, deep + '/')), [head, head - 1, head - 2])

    // two of every three in the deep folder go, and every long one near 2 KiB
    const gone = [...inDeep.filter((_, i) => i % 3 !== 0), ...nearMid]
    await store.commit(async (tx) => {
      gone.forEach((path) => tx.deleteFile(ALICE, path, meta(sizes.get(path)!)))
      tx.append(gone.map((path, i) => ({ seq: tx.head + i + 1, type: 'DEL' as const, user: ALICE, path, ts: 1 })))
    })
    const left = paths.filter((p) => !gone.includes(p)).map((p) => ALICE + p)
    t.equal(await store.fileMeta(ALICE, gone[0]!), undefined, 'deleted')
    t.same((await store.fileMeta(ALICE, inDeep[0]!))?.size, sizes.get(inDeep[0]!), 'its neighbour stays')
    await checkListed(t, store, left, 'after deleting', [1, 7])
    t.same(await store.commit((tx) => tx.countUnder(folders.slice(0, 2), 1000)), [200, 0])
    t.same((await store.fileMeta(BOB, inDeep[1]!))?.size, 1, "the other user's file of the same path stays")
    if (reopen === undefined) return
    store = await reopen()
    await checkListed(t, store, left, 'reopened', [250])
  },
}
