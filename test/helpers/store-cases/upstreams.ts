import type { Case } from './common.js'
import { ALICE, putEvent, seqs } from './common.js'

const HS = 'h'.repeat(52)
const URL_A = 'http://127.0.0.1:1/'

/** A relay's upstream cursors: stored with the events they cover, whole or not at all. */
export const upstreamCases: Record<string, Case> = {
  async 'an upstream cursor lands in the commit of its events'(t, factory) {
    const { store, reopen } = await factory.open(t)
    t.same(await store.upstreamCursors(), [], 'none before the first commit')
    await store.commit(async (tx) => {
      t.same(await tx.upstreamCursors([URL_A, 'other']), [undefined, undefined])
      tx.append([{ ...putEvent(1, ALICE, '/pub/a'), homeserver: HS, originSeq: 7 }])
      tx.setUpstreamCursor({ upstream: URL_A, homeserver: HS, cursor: 7 })
    })
    t.same(await store.upstreamCursors(), [{ upstream: URL_A, homeserver: HS, cursor: 7 }])
    const [ev] = (await store.readLog(0, 1, 10)).events
    t.equal(ev!.homeserver, HS, 'a relayed event keeps its origin')
    t.equal(ev!.originSeq, 7)
    await store.commit(async (tx) => {
      t.same(await tx.upstreamCursors([URL_A]), [{ upstream: URL_A, homeserver: HS, cursor: 7 }], 'read inside the next commit')
      tx.setUpstreamCursor({ upstream: URL_A, homeserver: HS, cursor: 9 })
    })
    t.equal(await store.head(), 1, 'a commit of a cursor alone appends nothing')
    if (reopen === undefined) return
    const again = await reopen()
    t.same(await again.upstreamCursors(), [{ upstream: URL_A, homeserver: HS, cursor: 9 }], 'kept across a reopen')
  },

  async 'an upstream cursor may go back to 0 (an upstream whose log started again)'(t, factory) {
    const { store, reopen } = await factory.open(t)
    await store.commit(async (tx) => tx.setUpstreamCursor({ upstream: URL_A, homeserver: HS, cursor: 7 }))
    await store.commit(async (tx) => tx.setUpstreamCursor({ upstream: URL_A, homeserver: HS, cursor: 0 }))
    t.same(await store.upstreamCursors(), [{ upstream: URL_A, homeserver: HS, cursor: 0 }])
    if (reopen === undefined) return
    t.same(await (await reopen()).upstreamCursors(), [{ upstream: URL_A, homeserver: HS, cursor: 0 }], 'kept across a reopen')
  },

  async 'a failed commit leaves the cursor where it was'(t, factory) {
    const { store } = await factory.open(t)
    await store.commit(async (tx) => {
      tx.append([{ ...putEvent(1, ALICE, '/pub/a'), homeserver: HS, originSeq: 1 }])
      tx.setUpstreamCursor({ upstream: URL_A, homeserver: HS, cursor: 1 })
    })
    await t.rejects(
      store.commit(async (tx) => {
        tx.append([{ ...putEvent(2, ALICE, '/pub/b'), homeserver: HS, originSeq: 2 }])
        tx.setUpstreamCursor({ upstream: URL_A, homeserver: HS, cursor: 2 })
        throw new Error('refused')
      }),
      { message: 'refused' },
    )
    t.same(await store.upstreamCursors(), [{ upstream: URL_A, homeserver: HS, cursor: 1 }])
    t.same(seqs((await store.readLog(0, 10, 10)).events), [1])
  },

  async "a followed filter's cursors: long names, many in one commit, each on its own"(t, factory) {
    const { store, reopen } = await factory.open(t)
    // `<homeserver>|<filter>`, up to the relay's longest followed filter (1024 bytes)
    const long = `${HS}|${ALICE}/pub/${'é'.repeat(300)}${'x'.repeat(400)}*`
    const names = [long, `${HS}|${ALICE}/*`, `${HS}|${ALICE}/pub/app/*`]
    t.ok(Buffer.byteLength(long) > 1024, 'a name past 1 KiB')
    await store.commit(async (tx) => {
      t.same(await tx.upstreamCursors(names), [undefined, undefined, undefined])
      names.forEach((upstream, i) => tx.setUpstreamCursor({ upstream, homeserver: HS, cursor: 10 * (i + 1) }))
    })
    await store.commit(async (tx) => tx.setUpstreamCursor({ upstream: names[1]!, homeserver: HS, cursor: 25 }))
    const want = [{ upstream: long, homeserver: HS, cursor: 10 }, { upstream: names[1], homeserver: HS, cursor: 25 }, { upstream: names[2], homeserver: HS, cursor: 30 }]
    await store.commit(async (tx) => t.same(await tx.upstreamCursors(names), want, 'read back inside a commit, each its own'))
    const all = async (s: typeof store) => (await s.upstreamCursors()).sort((a, b) => a.cursor - b.cursor)
    t.same(await all(store), want, 'and listed')
    if (reopen === undefined) return
    t.same(await all(await reopen()), want, 'kept across a reopen')
  },

  async "one user's followed filters' cursors, read by their names' prefix inside a commit"(t, factory) {
    const { store } = await factory.open(t)
    const other = 'o'.repeat(52)
    // a user's key is a prefix of no other's (all are 52 characters); the names around it must
    // not come back, such as one a collation of a language would sort between it and the next key
    const mine = [`${HS}|${ALICE}*`, `${HS}|${ALICE}/pub/${'é'.repeat(300)}*`, `${HS}|${ALICE}/pub/a/*`]
    const around = [`${HS}|${other}/*`, `${other}|${ALICE}/*`, URL_A, `${HS}|`, `${HS}|${ALICE.slice(0, -1)}`, `${HS}|${ALICE.slice(0, -1)}Y/*`]
    await store.commit(async (tx) => {
      for (const [i, upstream] of [...mine, ...around].entries()) tx.setUpstreamCursor({ upstream, homeserver: HS, cursor: i + 1 })
    })
    const byte = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))
    await store.commit(async (tx) => {
      const [found, none, theirs] = await tx.upstreamCursorsUnder([`${HS}|${ALICE}`, `${HS}|${'z'.repeat(52)}`, `${other}|${ALICE}`])
      t.same(found!.map((c) => c.upstream), [...mine].sort(byte), 'every cursor of the prefix, in byte order of their names, and nothing else')
      t.same(found!.map((c) => c.cursor), [...mine].sort(byte).map((n) => mine.indexOf(n) + 1))
      t.same(none, [], 'none for a prefix no name has')
      t.same(theirs!.map((c) => c.upstream), [`${other}|${ALICE}/*`])
    })
    t.same((await store.upstreamCursors([mine[2]!, 'nobody'])).map((c) => c.cursor), [3], 'and read by name outside a commit')
  },

  async 'another instance reads the cursor inside its commit'(t, factory) {
    const { store, second } = await factory.open(t)
    if (second === undefined) return t.plan(0, 'the engine serves one process')
    const b = await second()
    await store.commit(async (tx) => tx.setUpstreamCursor({ upstream: URL_A, homeserver: HS, cursor: 5 }))
    await b.commit(async (tx) => {
      t.same(await tx.upstreamCursors([URL_A]), [{ upstream: URL_A, homeserver: HS, cursor: 5 }])
    })
  },
}
