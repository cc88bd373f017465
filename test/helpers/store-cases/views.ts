import type { FileEntry, ReadView } from '../../../src/kv/store.js'
import type { Case } from './common.js'
import { ALICE, BOB, deleteFile, writeFile } from './common.js'

/** Reads every file of a view in pages of `page`, resuming after the last key of each. */
async function allFiles(view: ReadView, page: number): Promise<FileEntry[]> {
  const out: FileEntry[] = []
  for (let after: string | undefined; ;) {
    const got = await view.files(after === undefined ? {} : { gt: after }, page)
    out.push(...got)
    if (got.length < page) return out
    after = got.at(-1)!.user + got.at(-1)!.path
  }
}

/**
 * Read views, what a snapshot stands on: one committed state however many reads it takes,
 * whatever commits (on another instance too) land between them; and each file's metadata
 * keeps the seq of the write that made it.
 */
export const viewCases: Record<string, Case> = {
  async 'a read view sees one committed state across all its reads'(t, factory) {
    const { store, second } = await factory.open(t)
    await store.createUser(ALICE, 1)
    await store.createUser(BOB, 1)
    for (const p of ['a', 'b', 'c', 'd', 'e']) await writeFile(store, ALICE, `/pub/${p}`, 1)
    await writeFile(store, BOB, '/pub/x', 2)
    const view = await store.readView()
    t.teardown(() => view.close())
    t.equal(view.head, 6)
    t.equal(view.floor, 1)
    const before = await allFiles(view, 100)
    t.same(before.map((f) => f.path), ['/pub/x', '/pub/a', '/pub/b', '/pub/c', '/pub/d', '/pub/e'].sort((a, b) => (a === '/pub/x' ? -1 : b === '/pub/x' ? 1 : a < b ? -1 : 1)), 'in key order: BOB first')
    t.same(before.map((f) => f.meta.seq), [6, 1, 2, 3, 4, 5], 'each file with the seq of its write')
    // commits after the view opened, by another instance where there is one
    const other = second === undefined ? store : await second()
    await other.createUser('c'.repeat(52), 2)
    await deleteFile(other, ALICE, '/pub/b')
    await writeFile(other, ALICE, '/pub/c', 9)
    await writeFile(other, ALICE, '/pub/f', 1)
    await other.raiseFloor(3)
    t.same(await allFiles(view, 2), before, 'read again in pages of two: the same files, the same metadata')
    t.same(await view.users(undefined, 10), [BOB, ALICE], 'the users as they stood')
    t.same(await view.users(BOB, 10), [ALICE], 'after a key')
    t.equal(view.head, 6)
    const now = await store.readView()
    t.teardown(() => now.close())
    t.same([now.head, now.floor], [9, 3], 'a new view sees the commits')
    t.same((await allFiles(now, 3)).map((f) => `${f.path}@${f.meta.seq}`), ['/pub/x@6', '/pub/a@1', '/pub/c@8', '/pub/d@4', '/pub/e@5', '/pub/f@9'])
    t.same((await view.files({ gte: ALICE + '/pub/c', lt: ALICE + '/pub/e' }, 10)).map((f) => f.path), ['/pub/c', '/pub/d'], 'a range, at the old state')
    await view.close()
  },
}
