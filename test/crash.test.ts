import t from 'tap'
import { newUser, startTestServer, tempDir } from './helpers/server.js'
import { runCrashRounds } from './helpers/crash-harness.js'
import { engineSettings } from './helpers/engine.js'

// SIGKILL `hearth serve` at random moments under concurrent writers and live followers, and
// check after every restart: acknowledged writes survive byte for byte, nothing half-written
// shows, the log is gapless and replays to the file set, followers resume without a hole.
t.test('every acknowledged write survives SIGKILL, and the log stays whole', async (t) => {
  const dataDir = tempDir(t, 'hearth-crash-')
  const { figures, violations } = await runCrashRounds({
    dataDir,
    env: await engineSettings(t, dataDir),
    rounds: 20,
    killAfterMs: [150, 900],
    progress: (line) => t.comment(line),
  })
  t.comment(JSON.stringify(figures))
  t.same(violations, [], 'no promise broken')
  t.equal(figures.rounds, 20)
  // the run must have exercised what it checks; the floors are low enough for a busy machine
  // on either engine (PostgreSQL acknowledges fewer writes in each short round)
  t.ok(figures.ackedPuts >= 40, `PUTs acknowledged (${figures.ackedPuts})`)
  t.ok(figures.ackedDeletes >= 5, `DELETEs acknowledged (${figures.ackedDeletes})`)
  t.ok(figures.blobPuts >= 5, `blob-sized PUTs acknowledged (${figures.blobPuts})`)
  t.ok(figures.unanswered >= 20, 'writes were in flight at the kills')
})

// A request can outlive shutdown: its body arrives after the database closed. The write
// must be refused like any failed write, not leave its promise pending and the process dead.
t.test('a write submitted after the database closed is refused, and the writer goes on', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  await alice.put('/pub/before.txt', 'x')
  await server.ctx.store.close()
  for (let i = 0; i < 2; i++) {
    const refused = await server.ctx.writer.submit({ type: 'DEL', user: alice.user, path: '/pub/before.txt' }).then(() => undefined, (err: unknown) => err)
    t.ok(refused instanceof Error, `write ${i + 1} refused`)
  }
})
