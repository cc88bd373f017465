import t, { type Test } from 'tap'
import { LOCKS } from '../src/kv/postgres/locks.js'
import { applyMigrations, migrate } from '../src/kv/postgres/migrate.js'
import { migrations } from '../src/kv/postgres/migrations.js'
import { openPostgresStore, type PostgresStore } from '../src/kv/postgres/store.js'
import { freshDatabase, rawPool, requirePostgres } from './helpers/postgres.js'
import { ALICE, BOB, byteOrder, collect, meta, seqs, within, writeFile } from './helpers/store-cases/common.js'
import { ID1, consumerRecord } from './helpers/store-cases/consumers.js'
import { PathMaker } from './helpers/long-paths.js'
import { MAX_PATH_BYTES } from '../src/paths.js'
import type { ConsumerRecord } from '../src/kv/store.js'
import { storeConformance, type StoreFactory } from './helpers/store-conformance.js'

/**
 * The PostgreSQL engine: the shared conformance suite with two instances (two pools) on one
 * database, then what only this engine has — migrations, LISTEN and its fallback poll, the
 * commit's own checks, the prune lock, the blob sweep. Each test has its own database.
 */
async function opener(t: Parameters<StoreFactory['open']>[0]) {
  const url = await freshDatabase(t)
  const open: PostgresStore[] = []
  t.teardown(() => Promise.all(open.map((s) => s.close())))
  return {
    url,
    async next(): Promise<PostgresStore> {
      const s = await openPostgresStore(url)
      open.push(s)
      return s
    },
  }
}

const factory: StoreFactory = {
  name: 'postgres',
  async open(t) {
    const db = await opener(t)
    let store = await db.next()
    return {
      store,
      second: () => db.next(),
      async reopen() {
        await store.close()
        store = await db.next()
        return store
      },
    }
  },
}

if (await requirePostgres(t)) {
  storeConformance(t, factory)

  t.test('migrations run once, however many instances start together', async (t) => {
    const url = await freshDatabase(t)
    const runs = await Promise.all([migrate(url), migrate(url), migrate(url)])
    const all = migrations.map((m) => m.version)
    t.same(runs.filter((r) => r.length > 0), [all], 'one run applied every migration, the others found nothing to do')
    const sql = rawPool(t, url)
    t.same((await sql.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version), all)
    t.same(await migrate(url), [], 'nothing left on a later run')
    await sql.query("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')")
    await t.rejects(openPostgresStore(url), /schema is version 999, newer than this Hearth knows/, 'an older Hearth refuses a newer schema')
  })

  t.test('a database of the schema before long keys opens after the upgrade, its files and listings intact', async (t) => {
    const url = await freshDatabase(t)
    const sql = rawPool(t, url)
    const before = migrations.filter((m) => m.version < 3)
    t.same(await applyMigrations(sql, before), [1, 2], 'built as version 2')
    // files as that schema's commits wrote them; a long path it could hold compresses well
    const paths = ['/pub/a/1', '/pub/a/b/2', '/pub/a/é', '/pub/a/\u{1F600}', '/pub/a/\u{E000}', '/pub/a-b', '/pub/a0', '/priv/x', `/pub/a/${'c/'.repeat(1500)}long`]
    await sql.query("INSERT INTO users (id, created_at, usage) VALUES ($1, 1, $2), ($3, 1, 1)", [ALICE, paths.length, BOB])
    const write = (user: string, path: string, size: number) =>
      sql.query(
        `INSERT INTO files (key, user_id, size, hash, type, mtime, blob, content) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)`,
        [user + path, user, size, meta(size).hash, meta(size).type, meta(size).mtime, Buffer.alloc(size, 7)],
      )
    for (const [i, path] of paths.entries()) await write(ALICE, path, i)
    await write(BOB, '/pub/a/1', 1)

    // an upgrade that fails part way leaves the database as it was
    const broken = migrations.map((m) => (m.version === 3 ? { ...m, sql: m.sql + '\nSELECT 1 / 0;' } : m))
    await t.rejects(applyMigrations(sql, broken), /division by zero/)
    t.same((await sql.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version), [1, 2], 'still version 2')
    const columns = await sql.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'files' AND column_name = 'key_start'")
    t.equal(columns.rowCount, 0, 'with the files table of version 2')

    const store = await openPostgresStore(url)
    t.teardown(() => store.close())
    t.same((await sql.query('SELECT max(version) AS v FROM schema_migrations')).rows[0].v, migrations.at(-1)!.version, 'upgraded')
    for (const [i, path] of paths.entries()) {
      // with no event of its write in the log, a file of before gets the floor − 1 for its seq
      t.same(await store.fileMeta(ALICE, path), { ...meta(i), seq: 0 }, `${path.slice(0, 20)}: its metadata`)
      t.same(await store.inlineContent(ALICE, path), Buffer.alloc(i, 7), 'and its content')
    }
    const keys = paths.map((p) => ALICE + p).sort(byteOrder)
    t.same(await collect(store.fileKeys({ gt: ALICE, lt: ALICE + '0' })), keys, 'listed in byte order')
    t.same(await collect(store.fileKeys({ gt: ALICE, lt: ALICE + '0', reverse: true, limit: 4 })), keys.slice(-4).reverse(), 'and back')
    const folders = ['/pub/a', '/pub/a/c/c', `/pub/a/${'c/'.repeat(1100)}c`, '/pub/b'].map((path) => ({ user: ALICE, path }))
    t.same(await store.commit((tx) => tx.countUnder(folders, 100)), [6, 1, 1, 0], 'files below folders, 2 KB deep too')
    // and what the old schema refused now lands beside what it held
    const long = new PathMaker(3).path('/pub/a', MAX_PATH_BYTES)
    await writeFile(store, ALICE, long, 3)
    t.same(await store.fileMeta(ALICE, long), meta(3, { seq: 1 }), 'a long path of random letters')
    t.same(await collect(store.fileKeys({ gt: ALICE, lt: ALICE + '0' })), [...keys, ALICE + long].sort(byteOrder), 'listed with the rest')
    await writeFile(store, ALICE, paths[0]!, 5)
    t.same(await store.fileMeta(ALICE, paths[0]!), meta(5, { seq: 2 }), 'an old file replaced in place')
    t.equal((await sql.query('SELECT 1 FROM files WHERE key = $1', [ALICE + paths[0]])).rowCount, 1, 'one row')
  })

  t.test('a database whose consumers kept their outstanding events inside their row opens after the upgrade, each consumer whole', async (t) => {
    const url = await freshDatabase(t)
    const sql = rawPool(t, url)
    const split = migrations.find((m) => m.name === 'consumer events in rows of their own')!.version
    await applyMigrations(sql, migrations.filter((m) => m.version < split))
    const outstanding = [{ seq: 4, user: BOB, deliveries: 1, holder: 'a', deadline: 9 }, { seq: 5, user: ALICE, deliveries: 0 }]
    const old = consumerRecord(ALICE, ID1, { cursor: 5, outstanding, dead: [{ seq: 2, deliveries: 5, reason: 'maxDeliver' }] })
    const empty = consumerRecord(BOB, ID1)
    for (const r of [old, empty]) await sql.query('INSERT INTO consumers (owner, id, created_at, record) VALUES ($1, $2, $3, $4)', [r.owner, r.id, r.createdAt, JSON.stringify(r)])
    await readWholeAfterUpgrade(t, url, old, empty)
  })

  t.test("a database whose consumers kept their outstanding events in rows of their own opens after the upgrade, each consumer whole", async (t) => {
    const url = await freshDatabase(t)
    const sql = rawPool(t, url)
    const journal = migrations.find((m) => m.name === 'consumer changes in a journal')!.version
    await applyMigrations(sql, migrations.filter((m) => m.version < journal))
    const outstanding = [{ seq: 4, user: BOB, deliveries: 1, holder: 'a/1', deadline: 9 }, { seq: 0x1f, user: ALICE, deliveries: 0 }, { seq: 40, user: BOB, deliveries: 2 }]
    const old = consumerRecord(ALICE, ID1, { cursor: 40, outstanding, dead: [{ seq: 2, deliveries: 5, reason: 'maxDeliver' }] })
    const empty = consumerRecord(BOB, ID1)
    for (const r of [old, empty]) {
      const { outstanding: events, ...head } = r
      await sql.query('INSERT INTO consumers (owner, id, created_at, record, version) VALUES ($1, $2, $3, $4, 7)', [r.owner, r.id, r.createdAt, JSON.stringify(head)])
      for (const e of events) {
        await sql.query('INSERT INTO consumer_events (owner, id, seq, user_id, deliveries, holder, deadline) VALUES ($1, $2, $3, $4, $5, $6, $7)', [r.owner, r.id, e.seq, e.user, e.deliveries, e.holder ?? null, e.deadline ?? null])
      }
    }
    await readWholeAfterUpgrade(t, url, old, empty)
  })

  t.test('a database that does not answer: a clear error, the password hidden', async (t) => {
    const err = await openPostgresStore('postgres://hearth:hunter2@127.0.0.1:1/none').then(
      () => undefined,
      (e: Error) => e,
    )
    t.match(err?.message, /^PostgreSQL at postgres:\/\/hearth:\*\*\*@127\.0\.0\.1:1\/none: .*ECONNREFUSED/)
    t.notMatch(err?.message, /hunter2/)
  })

  t.test('commits that would not be durable (synchronous_commit off): the store refuses to open, saying why', async (t) => {
    const url = await freshDatabase(t)
    const sql = rawPool(t, url)
    const database = new URL(url).pathname.slice(1)
    const refused = /^PostgreSQL at .*: synchronous_commit is off for these connections, so an acknowledged write could be lost in a crash/
    await sql.query(`ALTER DATABASE "${database}" SET synchronous_commit = off`)
    await t.rejects(openPostgresStore(url), refused, 'set for the database')
    t.equal((await sql.query("SELECT to_regclass('events') AS t")).rows[0].t, null, 'refused before any schema was made')
    await sql.query(`ALTER DATABASE "${database}" SET synchronous_commit = local`)
    await t.rejects(openPostgresStore(`${url}?options=${encodeURIComponent('-c synchronous_commit=off')}`), refused, 'set in the URL, for its connections')
    const store = await openPostgresStore(url)
    t.teardown(() => store.close())
    await store.createUser(ALICE, 1)
    t.equal((await writeFile(store, ALICE, '/pub/x')).seq, 1, 'local (flushed on this server before COMMIT returns) is durable enough')
  })

  t.test('a commit referencing a blob that is not stored is refused whole', async (t) => {
    const { next } = await opener(t)
    const store = await next()
    await store.createUser(ALICE, 1)
    await t.rejects(writeFile(store, ALICE, '/pub/x', 10, { blob: 'f'.repeat(32) }), /a blob this commit references is not stored/)
    const upload = await store.blobs.create()
    await upload.write(Buffer.alloc(10))
    await t.rejects(writeFile(store, ALICE, '/pub/x', 10, { blob: upload.id }), /not stored/, 'nor one still being uploaded')
    t.equal(await store.head(), 0)
    t.equal(await store.fileMeta(ALICE, '/pub/x'), undefined)
    t.equal((await store.user(ALICE))!.usage, 0)
    await upload.finish()
    t.equal((await writeFile(store, ALICE, '/pub/x', 10, { blob: upload.id })).seq, 1, 'the refused commits used no seq')
  })

  t.test('the lock hold of each commit group is measured', async (t) => {
    const { next } = await opener(t)
    const store = await next()
    await store.createUser(ALICE, 1)
    for (const i of [1, 2, 3]) await writeFile(store, ALICE, `/pub/${i}`)
    await t.rejects(store.commit(async () => Promise.reject(new Error('no'))))
    const s = store.lockStats
    t.equal(s.groups, 4, 'refused groups held the lock too')
    t.ok(s.totalMs > 0 && s.maxMs >= s.lastMs && s.totalMs >= s.maxMs, JSON.stringify(s))
    t.equal(store.lastLockHoldMs, s.lastMs)
    await store.ping()
  })

  t.test('one pruner at a time: another process holding the prune lock makes it a no-op', async (t) => {
    const { url, next } = await opener(t)
    const store = await next()
    await store.createUser(ALICE, 1)
    for (const i of [1, 2, 3, 4]) await writeFile(store, ALICE, `/pub/${i}`)
    await store.raiseFloor(4)
    const other = await rawPool(t, url).connect()
    await other.query('SELECT pg_advisory_lock($1, $2)', [LOCKS.class, LOCKS.prune])
    t.equal(await store.pruneBelowFloor(10), 0, 'another pruner is at work')
    t.same(seqs((await store.readLog(0, 4, 10)).events), [1, 2, 3, 4])
    await other.query('SELECT pg_advisory_unlock($1, $2)', [LOCKS.class, LOCKS.prune])
    other.release()
    t.equal(await store.pruneBelowFloor(10), 3)
  })

  t.test('a commit lock held from outside: the commit fails with a lock timeout, then commits go on', async (t) => {
    const url = await freshDatabase(t)
    const store = await openPostgresStore(url, { lockTimeoutMs: 300 })
    t.teardown(() => store.close())
    await store.createUser(ALICE, 1)
    const other = await rawPool(t, url).connect()
    await other.query('BEGIN')
    await other.query("SELECT value FROM log_bounds WHERE name = 'head' FOR UPDATE")
    await t.rejects(within(5000, writeFile(store, ALICE, '/pub/stuck'), 'the commit to give up'), { code: '55P03' }, 'a clear error, not a wait without end')
    await other.query('ROLLBACK')
    other.release()
    t.equal((await writeFile(store, ALICE, '/pub/after')).seq, 1, 'no seq was used by the one that gave up')
  })

  t.test('a head raised without a notification is found by the poll', async (t) => {
    const { url, next } = await opener(t)
    const store = await next()
    const heard = new Promise<number | undefined>((resolve) => t.teardown(store.watch(resolve)))
    // a commit whose NOTIFY was lost, as the watcher sees it
    await rawPool(t, url).query("UPDATE log_bounds SET value = value + 1 WHERE name = 'head'")
    t.equal(await within(10_000, heard, 'the poll notices the new head'), 1)
  })

  t.test('after its LISTEN connection drops, the watcher re-listens and says so', async (t) => {
    const { url, next } = await opener(t)
    const [a, b] = [await next(), await next()]
    await a.createUser(ALICE, 1)
    const calls: (number | undefined)[] = []
    let notify = () => {}
    t.teardown(
      b.watch((head) => {
        calls.push(head)
        notify()
      }),
    )
    const until = (what: string, ok: () => boolean) =>
      within(
        10_000,
        new Promise<void>((resolve) => {
          notify = () => ok() && resolve()
          notify()
        }),
        what,
      )
    const { rowCount } = await rawPool(t, url).query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND query ILIKE 'listen%' AND pid <> pg_backend_pid()`,
    )
    t.equal(rowCount, 2, 'both stores lost their LISTEN connection')
    await until('a call with no head after the reconnect', () => calls.includes(undefined))
    await writeFile(a, ALICE, '/pub/after')
    await until('the next commit is heard', () => calls.includes(1))
  })

  t.test('the sweep deletes released and abandoned blobs, never a live one', async (t) => {
    const { url, next } = await opener(t)
    const store = await next()
    const sql = rawPool(t, url)
    const blob = async (finish: boolean) => {
      const up = await store.blobs.create()
      await up.write(Buffer.alloc(300_000, 1))
      if (finish) await up.finish()
      return up
    }
    const age = (id: string, column: string, ago: string) =>
      sql.query(`UPDATE blobs SET ${column} = now() - $2::interval WHERE id = $1`, [id, ago])
    const [oldDead, readDead, freshDead, stale, busy, kept] = [await blob(true), await blob(true), await blob(true), await blob(false), await blob(false), await blob(true)]
    for (const b of [oldDead, readDead, freshDead]) await store.blobs.remove(b.id)
    await age(oldDead.id, 'dead_at', '16 minutes')
    await age(readDead.id, 'dead_at', '16 minutes')
    await age(readDead.id, 'read_at', '1 minute')
    await age(stale.id, 'touched_at', '61 minutes')
    await store.createUser(ALICE, 1)
    await writeFile(store, ALICE, '/pub/kept', 300_000, { blob: kept.id })
    await age(kept.id, 'touched_at', '2 days')
    t.equal(await store.blobs.sweep(), 2, 'the one released long ago, and the abandoned upload')
    const left = (await sql.query<{ id: string }>('SELECT id FROM blobs')).rows.map((r) => r.id).sort()
    t.same(left, [readDead.id, freshDead.id, busy.id, kept.id].sort(), 'recently read, recently released, in progress and referenced blobs stay')
    const chunks = await sql.query('SELECT 1 FROM blob_chunks WHERE blob_id = $1', [oldDead.id])
    t.equal(chunks.rowCount, 0, 'with their chunks')
    await busy.write(Buffer.alloc(300_000, 2))
    await busy.finish()
    await t.rejects(stale.write(Buffer.alloc(300_000)), /was removed while it was being written/, 'a swept upload fails rather than writing into nothing')
  })

  t.test('connections killed under concurrent commits: the process goes on, the log stays gapless', async (t) => {
    const { url, next } = await opener(t)
    const store = await next()
    await store.createUser(ALICE, 1)
    const admin = rawPool(t, url)
    const acked: { seq: number; path: string }[] = []
    let failed = 0
    let progress = () => {}
    const writer = async (w: number) => {
      for (let i = 0; i < 150; i++) {
        const path = `/pub/w${w}/${i}`
        try {
          acked.push({ seq: (await writeFile(store, ALICE, path)).seq, path })
        } catch {
          failed++
        }
        progress()
      }
    }
    const writers = Promise.all([1, 2, 3, 4].map(writer))
    let killed = 0
    for (let round = 0; round < 5; round++) {
      // wait for the writers to get going again, then cut every connection of theirs
      const target = acked.length + failed + 20
      await within(30_000, new Promise<void>((resolve) => (progress = () => acked.length + failed >= target && resolve())), 'writers make progress')
      const { rowCount } = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'hearth'`,
      )
      killed += rowCount ?? 0
    }
    progress = () => {}
    await writers
    t.ok(killed > 0, `${killed} connections terminated; ${failed} of 600 commits failed`)
    const head = await store.head()
    const log = (await store.readLog(0, head, head + 1)).events
    t.same(seqs(log), Array.from({ length: head }, (_, i) => i + 1), 'every seq from 1 to the head, once')
    const bySeq = new Map(log.map((e) => [e.seq, e.path]))
    t.ok(acked.every((a) => bySeq.get(a.seq) === a.path), 'every acknowledged commit is in the log, at its seq')
    t.equal((await writeFile(store, ALICE, '/pub/after')).seq, head + 1, 'and the store goes on')
  })
}

/** After the upgrade of a database holding `old` and `empty`: both read whole, and a change of `old` read by another instance. */
async function readWholeAfterUpgrade(t: Test, url: string, old: ConsumerRecord, empty: ConsumerRecord): Promise<void> {
  const store = await openPostgresStore(url)
  t.teardown(() => store.close())
  t.same(await store.consumer(ALICE, ID1), old, 'read whole')
  t.same(await store.consumer(BOB, ID1), empty, 'one with nothing outstanding too')
  await store.updateConsumer(ALICE, ID1, (r) => ({ record: { ...r, outstanding: r.outstanding.slice(1) }, result: undefined }))
  const other = await openPostgresStore(url)
  t.teardown(() => other.close())
  t.same(await other.consumer(ALICE, ID1), { ...old, outstanding: old.outstanding.slice(1) }, 'and a change of it, from another instance')
}
