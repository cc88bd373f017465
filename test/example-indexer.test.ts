import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { View, type FileRow, type UserRow } from '../examples/indexer/view.js'
import { Consumers, newConsumerId, type HomeserverClient } from 'hearth-homeserver-client'
import { newUser, startTestServer, tempDir } from './helpers/server.js'
import { AckedWrites } from './helpers/acked-writes.js'
import { idOf } from 'hearth-homeserver-client/id'
import { startScript, type RunningCli } from './helpers/cli.js'
import { until } from './helpers/until.js'
import { storedFiles, type StoredFile } from './helpers/stored-files.js'

const INDEXER = fileURLToPath(new URL('../examples/indexer/index.js', import.meta.url))
const KILLS = 12

function startIndexer(args: string[], env: Record<string, string> = {}): RunningCli {
  return startScript(INDEXER, args, { env })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A write the server acknowledged; only PUTs carry a size. */
interface Written {
  user: string
  type: 'PUT' | 'DEL'
  path: string
  size?: number
}

/**
 * PUTs and DELETEs over a few shared paths, until told to stop, each recorded once acknowledged.
 * 404s on DELETE write nothing. One writer per user, so a user's writes are recorded in order.
 */
async function writer(u: HomeserverClient, running: () => boolean, written: Written[]): Promise<void> {
  while (running()) {
    const path = `/pub/app/p${Math.floor(Math.random() * 8)}`
    const r = Math.random()
    if (r < 0.6) {
      const body = randomBytes(Math.floor(Math.random() * 3000))
      await u.put(path, body)
      written.push({ user: u.user, type: 'PUT', path, size: body.length })
    } else if (r < 0.95) {
      const res = await u.request('DELETE', path)
      await res.body?.cancel()
      if (res.status !== 204 && res.status !== 404) throw new Error(`DELETE answered ${res.status}`)
      if (res.status === 404) continue
      written.push({ user: u.user, type: 'DEL', path })
    } else {
      await u.put('/priv/notes', randomBytes(10)) // never in a public feed
      written.push({ user: u.user, type: 'PUT', path: '/priv/notes', size: 10 })
    }
  }
}

/**
 * What the view must hold, from the acknowledged writes: size per `<user><path>` under /pub/,
 * and per user the files, bytes and number of public events.
 */
function truth(written: readonly Written[]) {
  const pub = written.filter((w) => w.path.startsWith('/pub/'))
  const files = new Map<string, number>()
  for (const w of pub) {
    if (w.type === 'PUT') files.set(w.user + w.path, w.size!)
    else files.delete(w.user + w.path)
  }
  const perUser = new Map<string, { files: number; bytes: number; events: number }>()
  for (const user of new Set(pub.map((w) => w.user))) {
    const own = [...files].filter(([key]) => key.startsWith(user + '/'))
    perUser.set(user, { files: own.length, bytes: own.reduce((sum, [, size]) => sum + size, 0), events: pub.filter((w) => w.user === user).length })
  }
  return { files, perUser, events: pub.length }
}

t.test('kill -9 at random moments under concurrent writes: the view always ends equal to the server', async (t) => {
  const server = await startTestServer(t)
  const users = await Promise.all([newUser(server), newUser(server), newUser(server)])
  const db = join(tempDir(t), 'view')
  // The view starts from the snapshot of a homeserver with no files yet: every write from
  // here on is an event it must apply once.
  const empty = await startIndexer(['--url', server.url, '--db', db, '--once']).done
  t.equal(empty.code, 0, empty.stderr)
  t.match(empty.stdout, /^snapshot new\n(.*\n)*synced \S+ files 0\n/)
  let running = true
  const written: Written[] = []
  const writers = users.map((u) => writer(u, () => running, written))

  let lastKill = 0
  const progress: string[] = []
  for (let round = 0; round < KILLS; round++) {
    // A backlog for each run, so most kills land while it is busy catching up.
    await until(() => written.length >= lastKill + 60, `a backlog of 60 acknowledged writes after ${lastKill}`, 20_000, () => written.length)
    const run = startIndexer(['--url', server.url, '--db', db])
    if (round % 4 === 3) {
      await sleep(Math.random() * 400) // sometimes during start-up: opening the db, connecting
    } else {
      await until(() => /state (catching-up|live)/.test(run.stdout()), 'the indexer to report its state', 20_000, run.stdout)
      await sleep(Math.random() * 250)
    }
    run.child.kill('SIGKILL')
    t.equal((await run.done).code, null, `round ${round}: killed, not exited`)
    lastKill = written.length
    progress.push(/applied (\d+)/.exec(run.stdout())?.[1] ?? '-')
  }
  running = false
  await Promise.all(writers)
  // Every write so far is one event, so one more, alone, is the last event at a seq known here.
  const last = await new AckedWrites(written.length).put(users[0]!, '/pub/app/last', 'last')
  written.push({ user: last.user, type: 'PUT', path: last.path, size: last.size })

  const final = await startIndexer(['--url', server.url, '--db', db, '--once']).done
  t.equal(final.code, 0, final.stderr)

  const view = await View.open(db)
  t.teardown(() => view.close())
  const want = truth(written)
  t.ok(written.length > KILLS * 60 && want.events > KILLS * 50, `writers wrote (${written.length} writes, ${want.events} public events)`)
  t.ok(want.files.size > 0, `the server holds files (${want.files.size})`)
  t.ok(new Set(progress).size > KILLS / 2, `the runs made progress between kills (applied at each start: ${progress.join(' ')})`)

  const files = await view.files()
  t.same(new Map([...files].map(([k, v]) => [k, v.size])), want.files, 'the view holds exactly the server\'s files and sizes')
  t.same(await view.users(), want.perUser, 'files, bytes and events per user match: no event skipped, none applied twice')
  t.equal(view.progress.applied, want.events)
  t.equal(view.progress.lastSeq, String(last.seq))
})

t.test('a new view starts from a snapshot; a restart after a clean stop resumes with no repeats', async (t) => {
  const server = await startTestServer(t)
  const u = await newUser(server)
  const db = join(tempDir(t), 'view')
  for (let i = 0; i < 5; i++) await u.put(`/pub/a/${i}`, 'x'.repeat(i))
  const first = await startIndexer(['--url', server.url, '--db', db, '--once']).done
  t.equal(first.code, 0, first.stderr)
  t.equal(first.stdout.match(/ FILE /g)?.length, 5, 'the five files, from the snapshot')
  for (let i = 0; i < 3; i++) await u.delete(`/pub/a/${i}`)
  const second = await startIndexer(['--url', server.url, '--db', db, '--once']).done
  t.equal(second.code, 0, second.stderr)
  t.equal(second.stdout.match(/ DEL /g)?.length, 3, 'then the three events after it')
  t.notMatch(second.stdout, /FILE|snapshot/, 'no second snapshot')
  const view = await View.open(db)
  t.equal(view.progress.applied, 3)
  t.same(await view.users(), new Map([[u.user, { files: 2, bytes: 3 + 4, events: 3 }]]))
  await view.close()
})

t.test('as its README runs it: HEARTH_URL, one line per file of the snapshot and per event applied, and --show to look at the view', async (t) => {
  const server = await startTestServer(t)
  const u = await newUser(server)
  const db = join(tempDir(t), 'view')
  const acked = new AckedWrites()
  await acked.put(u, '/pub/a.txt', 'aaa')
  await acked.put(u, '/priv/hidden', 'not followed')
  await acked.put(u, '/pub/b.txt', 'bb')
  await acked.delete(u, '/pub/a.txt')
  const run = (args: string[]) => startIndexer(['--db', db, ...args], { HEARTH_URL: server.url }).done
  const applied = (stdout: string) => stdout.split('\n').filter((l) => /^[0-9A-Z]{13} /.test(l))
  const once = await run(['--once'])
  t.equal(once.code, 0, once.stderr)
  const synced = acked.events.at(-1)!.seq
  t.same(applied(once.stdout), [`${idOf(3)} FILE pubky://${u.user}/pub/b.txt 2 B`], 'a new view: the files as they are, found through HEARTH_URL')
  t.match(once.stdout, `synced ${idOf(synced)} files 1\n`)

  await acked.put(u, '/pub/c.txt', 'cccc')
  await acked.delete(u, '/pub/b.txt')
  const more = await run(['--once'])
  const events = acked.events.filter((e) => e.seq > synced)
  t.same(applied(more.stdout), events.map((e) => `${idOf(e.seq)} ${e.type} pubky://${e.user}${e.path}${e.type === 'PUT' ? ` ${e.size} B` : ''}`),
    'then one line per event applied')
  const again = await run(['--once'])
  t.same(applied(again.stdout), [], 'nothing applied twice, nothing printed')
  const show = await run(['--show'])
  t.equal(show.code, 0)
  t.equal(show.stderr, '')
  t.same(show.stdout.trimEnd().split('\n'), [
    `pubky://${u.user}/pub/c.txt  4 B`,
    `user ${u.user}: 1 files, 4 B, 2 events`,
    `snapshot ${synced} cursor ${idOf(events.at(-1)!.seq)} applied 2`,
  ], '--show prints the view')
})

t.test('on a pruned log: a new view and a view whose cursor was pruned past both start from a snapshot, resumed across kill -9, equal to the files; then live', async (t) => {
  const server = await startTestServer(t, { EVENT_RETENTION: '20' })
  const users = await Promise.all([newUser(server), newUser(server)])
  const [oldDb, newDb] = [join(tempDir(t), 'old'), join(tempDir(t), 'new')]
  const acked = new AckedWrites()
  await acked.put(users[0]!, '/pub/e/first', 'first')
  await acked.put(users[1]!, '/pub/e/gone', 'deleted while the old view is away')
  const old = await startIndexer(['--url', server.url, '--db', oldDb, '--once']).done
  t.equal(old.code, 0, old.stderr)
  t.equal(old.stdout.match(/ FILE /g)?.length, 2)
  const oldCursor = acked.events.at(-1)!.seq

  // files come and go while the old view is away, and the log keeps only the last 20 events
  for (let i = 0; i < 600; i++) await acked.put(users[i % 2]!, `/pub/e/${(i * 7919) % 1000}`, `v${i}`.repeat(i % 5))
  for (let i = 0; i < 50; i++) await acked.delete(users[i % 2]!, `/pub/e/${(i * 7919) % 1000}`)
  await acked.delete(users[1]!, '/pub/e/gone')
  const head = acked.events.at(-1)!.seq
  await until(async () => (await info(server)).floor > oldCursor + 1, 'the log pruned past the old view\'s cursor', 30_000, () => oldCursor)

  // a new view, killed in the middle of its snapshot, then started again
  const killed = startIndexer(['--url', server.url, '--db', newDb])
  killed.child.stdout.on('data', (chunk: Buffer) => chunk.includes(' FILE ') && killed.child.kill('SIGKILL'))
  t.equal((await killed.done).code, null, 'killed')
  let view = await View.open(newDb)
  t.match(view.progress.cursor, /^~/, 'in the middle of the snapshot, its cursor a resume token')
  await view.close()
  const resumed = await startIndexer(['--url', server.url, '--db', newDb, '--once']).done
  t.equal(resumed.code, 0, resumed.stderr)
  t.notMatch(resumed.stdout, /snapshot new/, 'the snapshot resumed, not started again')
  t.match(resumed.stdout, /synced \S+ files \d+/)
  const files = await storedFiles(users, '/pub/')
  t.equal(files.size, 600 - 50 + 1, 'the homeserver holds the files written, less those deleted')
  view = await View.open(newDb)
  t.same(sizes(await view.files()), files, 'the new view holds the files the storage API lists')
  t.same(totals(await view.users()), totalsOf(files), 'and each user\'s files and bytes')
  await view.close()

  // the old view: its cursor is below the floor, so it takes a new snapshot, then goes on live
  const live = startIndexer(['--url', server.url, '--db', oldDb])
  await until(() => /synced/.test(live.stdout()), 'the old view synced', 30_000, live.stdout)
  t.match(live.stdout(), new RegExp(`\\nsnapshot reset \\(pruned ${oldCursor}\\.\\.\\d+\\)\n`), 'a reset, taken as a new snapshot')
  const later = [await acked.put(users[1]!, '/pub/e/later', 'later'), await acked.delete(users[0]!, '/pub/e/first')]
  await until(() => live.stdout().includes(`${idOf(later[1]!.seq)} DEL`), 'the live events applied', 30_000, live.stdout)
  live.child.kill('SIGINT')
  t.equal((await live.done).code, 0)
  view = await View.open(oldDb)
  t.teardown(() => view.close())
  const now = await storedFiles(users, '/pub/')
  t.same(sizes(await view.files()), now, 'the old view holds the files the storage API lists, live writes included')
  t.same(totals(await view.users()), totalsOf(now))
  t.equal(view.progress.applied, 2, 'two events applied after its snapshot')
  t.ok(BigInt(view.progress.snapshot!) >= BigInt(head), 'its snapshot taken after the last write before it')
})

async function info(server: { url: string }): Promise<{ head: number; floor: number }> {
  const body = (await (await fetch(`${server.url}/info`)).json()) as { events: { head: string; floor: string } }
  return { head: Number(body.events.head), floor: Number(body.events.floor) }
}

/** A view's files as the storage API describes them. */
const sizes = (files: Map<string, FileRow>) => new Map([...files].map(([k, v]) => [k, { size: v.size, contentHash: v.contentHash }]))

/** Files and bytes per user, of a view's user rows. */
const totals = (users: Map<string, UserRow>) => new Map([...users].filter(([, u]) => u.files > 0).map(([k, u]) => [k, { files: u.files, bytes: u.bytes }]))

/** Files and bytes per user, of the files a homeserver lists. */
function totalsOf(files: Map<string, StoredFile>): Map<string, { files: number; bytes: number }> {
  const out = new Map<string, { files: number; bytes: number }>()
  for (const [key, file] of files) {
    const user = key.slice(0, key.indexOf('/'))
    const row = out.get(user) ?? { files: 0, bytes: 0 }
    out.set(user, { files: row.files + 1, bytes: row.bytes + file.size })
  }
  return new Map([...out].sort())
}

t.test('three processes share one durable consumer, one of them killed -9 and restarted: their parts together are the files', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const dir = tempDir(t)
  const keyFile = join(dir, 'owner.key')
  writeFileSync(keyFile, Buffer.from(owner.keypair.secretKey).toString('hex') + '\n')
  const consumer = newConsumerId()
  const dbs = [0, 1, 2].map((i) => join(dir, `part-${i}`))
  const env = { HEARTH_URL: server.url }
  const start = (db: string) => startIndexer(['--consumer', consumer, '--key', keyFile, '--db', db], env)
  const workers = dbs.map(start)
  t.teardown(() => { for (const w of workers) w.child.kill('SIGKILL') })
  // what each worker said, and whether it exited, should one never start working
  const said = () => workers.map((w) => ({ exit: w.child.exitCode, stdout: w.stdout().slice(-300), stderr: w.stderr().slice(-600) }))
  await until(() => workers.every((w) => w.stdout().includes('working')), 'three workers working', 30_000, said)

  const users = await Promise.all([0, 1, 2, 3].map(() => newUser(server)))
  const written: Written[] = []
  let running = true
  const writing = Promise.all(users.map((u) => writer(u, () => running, written)))
  await until(() => written.length >= 60, 'writes under way')
  // one worker dies with whatever it holds, and comes back on the same part
  workers[1]!.child.kill('SIGKILL')
  await workers[1]!.done
  await until(() => written.length >= 120, 'more writes')
  workers[1] = start(dbs[1]!)
  await until(() => written.length >= 180, 'more writes after the restart')
  running = false
  await writing

  const consumers = new Consumers(owner)
  await until(async () => {
    const s = await consumers.get(consumer)
    return s.lag === 0 && s.pending === 0
  }, 'every event acknowledged', 60_000)
  for (const w of workers) w.child.kill('SIGTERM')
  await Promise.all(workers.map((w) => w.done))
  const shown = startIndexer(['--consumer', consumer, '--show', ...dbs.flatMap((d) => ['--db', d])], env)
  await shown.done
  const lines = shown.stdout().trim().split('\n').filter((l) => l !== '')
  const want = [...truth(written).files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, size]) => `pubky://${key}  ${size} B`)
  t.same(lines, want, 'the parts together hold exactly the public files, each as its last write made it')
  const parts = await Promise.all(workers.map(async (w) => w.stdout().split('\n').filter((l) => / (PUT|DEL) /.test(l)).length))
  t.ok(parts.filter((n) => n > 0).length >= 2, `the work was shared: ${parts.join(', ')} events applied per worker`)
})
