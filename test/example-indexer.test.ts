import t from 'tap'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { View } from '../examples/indexer/view.js'
import type { HomeserverClient } from '../src/client/homeserver.js'
import { newUser, startTestServer, tempDir } from './helpers/server.js'
import { AckedWrites } from './helpers/acked-writes.js'
import { idOf } from '../src/shared/id.js'
import { startScript, type RunningCli } from './helpers/cli.js'
import { until } from './helpers/until.js'

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

t.test('a restart after a clean stop resumes with no repeats, and a pruned gap stops the indexer loudly', async (t) => {
  const server = await startTestServer(t)
  const u = await newUser(server)
  const db = join(tempDir(t), 'view')
  for (let i = 0; i < 5; i++) await u.put(`/pub/a/${i}`, 'x'.repeat(i))
  const first = await startIndexer(['--url', server.url, '--db', db, '--once']).done
  t.equal(first.code, 0, first.stderr)
  for (let i = 0; i < 3; i++) await u.delete(`/pub/a/${i}`)
  const second = await startIndexer(['--url', server.url, '--db', db, '--once']).done
  t.equal(second.code, 0, second.stderr)
  let view = await View.open(db)
  t.equal(view.progress.applied, 8)
  t.same(await view.users(), new Map([[u.user, { files: 2, bytes: 3 + 4, events: 8 }]]))
  await view.close()

  for (let i = 0; i < 4; i++) await u.put(`/pub/b/${i}`, 'y')
  await server.ctx.events.prune(11)
  const third = await startIndexer(['--url', server.url, '--db', db, '--once']).done
  t.equal(third.code, 1)
  t.match(third.stderr, /pruned events 8\.\.11/)
  view = await View.open(db)
  t.equal(view.progress.applied, 8, 'nothing applied past the gap')
  await view.close()
})

t.test('as its README runs it: HEARTH_URL, one line per event applied, and --show to look at the view', async (t) => {
  const server = await startTestServer(t)
  const u = await newUser(server)
  const db = join(tempDir(t), 'view')
  const acked = new AckedWrites()
  await acked.put(u, '/pub/a.txt', 'aaa')
  await acked.put(u, '/priv/hidden', 'not followed')
  await acked.put(u, '/pub/b.txt', 'bb')
  await acked.delete(u, '/pub/a.txt')
  const run = (args: string[]) => startIndexer(['--db', db, ...args], { HEARTH_URL: server.url }).done
  const once = await run(['--once'])
  t.equal(once.code, 0, once.stderr)
  const events = acked.events.filter((e) => e.path.startsWith('/pub/'))
  const lines = once.stdout.split('\n').filter((l) => /^[0-9A-Z]{13} /.test(l))
  t.same(lines, events.map((e) => `${idOf(e.seq)} ${e.type} pubky://${e.user}${e.path}${e.type === 'PUT' ? ` ${e.size} B` : ''}`),
    'one line per event applied, found through HEARTH_URL without --url')
  const again = await run(['--once'])
  t.same(again.stdout.split('\n').filter((l) => /^[0-9A-Z]{13} /.test(l)), [], 'nothing applied twice, nothing printed')
  const show = await run(['--show'])
  t.equal(show.code, 0)
  t.equal(show.stderr, '')
  t.same(show.stdout.trimEnd().split('\n'), [
    `pubky://${u.user}/pub/b.txt  2 B`,
    `user ${u.user}: 1 files, 2 B, 3 events`,
    `cursor ${idOf(events.at(-1)!.seq)} applied 3`,
  ], '--show prints the view')
})
