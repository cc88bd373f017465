import t from 'tap'
import { seqOfId } from 'hearth-homeserver-client/id'
import { startTestServer, newUser } from './helpers/server.js'
import { writeMany } from './helpers/feed.js'
import { StalledReader } from './helpers/stalled-reader.js'
import { until } from './helpers/until.js'

// A stream that waits for its socket must be woken once the socket has taken what it holds,
// whatever it holds. A replay its stream reads alone writes text, and a socket counts text in
// characters where an HTTP response counts bytes: with paths of three-byte characters, the
// response refused a write the socket took, so its 'drain' never came, and a reader stalled
// past what the kernel buffers stayed stuck once it read again.

const EVENTS = 2_500
/** 960 characters of three UTF-8 bytes each, in segments of 240 bytes: a frame of ~3 KB of bytes and ~1,100 characters */
const NAME = Array.from({ length: 12 }, () => '€'.repeat(80)).join('/')

t.test('a stalled replay of text that is not ASCII ends once its reader reads', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  // ~7.5 MB of frames: more than the kernel holds of a stream nobody reads (about 4 MB here)
  await writeMany(owner, EVENTS, (i) => `/pub/d/${i}/${NAME}`, 32)

  const got: number[] = []
  const reader = new StalledReader(server.url, '/subscribe?filter=*&lastSeq=0&live=false', (f) => {
    if (f.event === 'PUT') got.push(Number(seqOfId(f.id!)))
  })
  t.teardown(() => reader.close())
  // the kernel is full: the server holds bytes it cannot write yet, and waits
  const blocked = () => [...server.ctx.feed.subscribers()].some((s) => s.stream.buffered > 0)
  await until(() => blocked(), 'the stream to hold bytes its socket does not take', 60_000)
  reader.resume()

  // the response ends once every event was sent (the connection stays open for the next request)
  await until(() => server.ctx.feed.size === 0 && got.length >= EVENTS, 'the replay to end, and its reader to get it all', 60_000, () => ({ got: got.length, buffered: [...server.ctx.feed.subscribers()].map((s) => s.stream.buffered) }))
  t.equal(got.length, EVENTS)
  t.ok(got.every((seq, i) => seq === i + 1), 'every event, once, in order')
})
