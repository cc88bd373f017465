import t from 'tap'
import { HomeserverClient } from 'hearth-homeserver-client'
import type { Server } from '../src/server.js'
import { startTestServer, newUser, tempDir } from './helpers/server.js'
import { Follower } from './helpers/feed.js'
import { SentPuts } from './helpers/acked-writes.js'
import { eventLine } from './helpers/event-checks.js'
import { until } from './helpers/until.js'
import type { StreamEvent } from './helpers/sse.js'

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

  // Writes go on throughout, each to a new path; while the server is down they fail and the
  // next one is tried a little later.
  const sent = new SentPuts()
  const acknowledged = () => sent.acked().length
  let stop = false
  const writes = (async () => {
    for (let i = 0; !stop; i++) {
      if (!(await sent.put(writer, `/pub/w/${i}`, `${i}`))) await new Promise((r) => setTimeout(r, 50))
    }
  })()

  await until(() => acknowledged() >= 30, '30 acknowledged writes', 30_000, acknowledged)
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
  const resumedAt = acknowledged()
  await until(() => acknowledged() >= resumedAt + 30, '30 more acknowledged writes after the restart', 30_000, acknowledged)
  stop = true
  await writes

  // The only writer: what landed, in the order it was written, is the whole log from seq 1.
  const landed = await sent.landed(second.url)
  const expected = landed.map((p, i) => eventLine({ ...p, seq: i + 1 }))
  const got = () => f.events.filter((e) => e.type !== 'reset').map((e) => eventLine(JSON.parse(e.data as string) as StreamEvent))
  await f.until(() => got().includes(expected.at(-1)!), 30_000)
  t.same(got(), expected, 'every write that landed, once, in order')
  t.ok(sent.acked().every((p) => landed.includes(p)), 'including every acknowledged one')
  t.ok(landed.length >= resumedAt + 30, 'and all written after the restart')
  t.ok(f.requests.length >= 2, 'it reconnected')
  // events already on their way when the server stopped may still arrive after `lastBefore` was
  // read: a reconnect resumes from the last id seen when it was made, never from before the stop
  const seen = f.events.map((e) => e.lastEventId)
  const from = f.requests.slice(1).map((h) => seen.indexOf(h['Last-Event-ID'] as string))
  t.ok(from.length > 0 && from.every((i) => i >= seen.indexOf(lastBefore)), 'from the last id it had seen, at or after the one before the stop')
  t.ok(f.requests.slice(1).every((h) => h['Last-Event-ID'] !== undefined), 'every reconnect carried an id')
})
