import t from 'tap'
import { HomeserverClient } from '../src/client/homeserver.js'
import type { Server } from '../src/server.js'
import { startTestServer, newUser, tempDir } from './helpers/server.js'
import { Follower, logEvents } from './helpers/feed.js'

// A follower keeps its EventSource open while the server stops and starts again on the same
// data folder and port: it reconnects with Last-Event-ID and ends up with every event once.

t.test('a follower survives a restart without losing or repeating an event', async (t) => {
  const dir = tempDir(t)
  const first = await startTestServer(t, { DATA_DIR: dir })
  const port = new URL(first.url).port
  const owner = await newUser(first)
  const writer = new HomeserverClient(first.url, owner.keypair, owner.session)
  const f = new Follower(`${first.url}/subscribe?filter=${owner.user}/pub/*&lastSeq=0`)
  t.teardown(() => f.close())
  await f.opened()

  // Writes go on throughout; while the server is down they fail and are tried again.
  let acknowledged = 0
  let stop = false
  const writes = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        await writer.put(`/pub/w/${i}`, `${i}`)
        acknowledged++
      } catch {
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  })()
  const until = async (n: number) => {
    while (acknowledged < n) await new Promise((r) => setTimeout(r, 10))
  }

  await until(30)
  await f.until(() => f.events.length >= 10) // it was following live before the stop
  await first.close()
  const lastBefore = f.events.at(-1)!.lastEventId
  let second: Server | undefined
  for (let attempt = 0; second === undefined; attempt++) {
    // the port was just released; the listen can race a closing socket
    second = await startTestServer(t, { DATA_DIR: dir, PORT: port }).catch((err) => {
      if (attempt > 50) throw err
      return new Promise<undefined>((r) => setTimeout(r, 100))
    })
  }
  const resumedAt = acknowledged
  await until(resumedAt + 30)
  stop = true
  await writes

  const log = await logEvents(second)
  const expected = log.filter((ev) => ev.user === owner.user && ev.path.startsWith('/pub/')).map((ev) => ev.seq)
  await f.until(() => f.seqs().at(-1) === expected.at(-1), 30_000)
  t.same(f.seqs(), expected, 'every event once, in order')
  t.ok(expected.length >= resumedAt + 30, 'including all written after the restart')
  t.ok(f.requests.length >= 2, 'it reconnected')
  t.ok(f.requests.slice(1).some((h) => h['Last-Event-ID'] === lastBefore), 'with the last id it had seen before the stop')
  t.ok(f.requests.slice(1).every((h) => h['Last-Event-ID'] !== undefined), 'every reconnect carried an id')
})
