import t from 'tap'
import { startTestServer, newUser, tempDir } from './helpers/server.js'
import { ChildServer } from './helpers/child-server.js'
import { until } from './helpers/until.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { randomKeypair } from '../src/auth/keys.js'
import { RawStream } from './helpers/feed.js'

t.test('MAX_STREAMS_PER_IP: the next stream gets 429 until one closes', async (t) => {
  const server = await startTestServer(t, { MAX_STREAMS_PER_IP: '3' })
  const user = await newUser(server)
  const open = [
    await RawStream.open(`${server.url}/subscribe`),
    await RawStream.open(`${server.url}/subscribe?filter=${user.user}/*&lastSeq=0`),
    await RawStream.open(`${server.url}/events-stream?user=${user.user}&live=true`),
  ]
  for (const s of open) t.teardown(() => s.close())
  t.same(open.map((s) => s.response.status), [200, 200, 200])

  const refused = await fetch(`${server.url}/subscribe`)
  t.equal(refused.status, 429)
  t.match(await refused.json(), { error: 'TooManyRequests' })
  const refusedUpstream = await fetch(`${server.url}/events-stream?user=${user.user}`)
  t.equal(refusedUpstream.status, 429)
  await refusedUpstream.body?.cancel()
  t.equal((await fetch(`${server.url}/info`)).status, 200, 'other routes are not limited')

  open[0]!.close()
  // The slot comes back once the server sees the socket close.
  const reverse = await whenFree(`${server.url}/events-stream?user=${user.user}&reverse=true`)
  t.equal(reverse.response.status, 200)
  await reverse.all() // a reverse replay ends by itself, and gives its slot back
  const last = await whenFree(`${server.url}/subscribe`)
  t.teardown(() => last.close())
  t.equal(last.response.status, 200)
})

/** Opens a stream, retrying while the server has not yet seen a closed one go. */
async function whenFree(url: string): Promise<RawStream> {
  let s: RawStream | undefined
  await until(async () => {
    s?.close()
    s = await RawStream.open(url)
    return s.response.status !== 429
  }, `a stream slot for ${url}`, 10_000, () => s?.response.status)
  return s!
}

t.test('closing the server ends every stream cleanly', async (t) => {
  const server = await startTestServer(t)
  const user = await newUser(server)
  await user.put('/pub/a.txt', 'a')
  const streams = [
    await RawStream.open(`${server.url}/subscribe?lastSeq=0`),
    await RawStream.open(`${server.url}/subscribe?filter=${user.user}/*`),
    await RawStream.open(`${server.url}/events-stream?user=${user.user}&live=true`),
  ]
  for (const replaying of [streams[0]!, streams[2]!]) await replaying.until(() => replaying.events().length === 1)
  await server.close()
  for (const s of streams) {
    await s.all() // rejects unless the stream ends within its deadline
    t.equal(s.error, undefined, 'cleanly: the body was complete, not cut off')
    t.equal(s.rest, '', 'and it stopped between two frames')
  }
  t.same(streams.map((s) => s.events().length), [1, 0, 1], 'each carried what it follows: the replays their event, the live-only stream nothing')
  t.equal(server.ctx.feed.size, 0)
})

t.test('SIGTERM: streams end cleanly and hearth serve exits 0 within 5 s', async (t) => {
  const server = await ChildServer.start({ dataDir: tempDir(t), env: { KEEPALIVE_MS: '1000' } })
  t.teardown(() => server.kill())
  const url = server.url
  const user = new HomeserverClient(url, randomKeypair())
  await user.signup()
  await user.put('/pub/x.txt', 'x')
  const streams = [
    await RawStream.open(`${url}/subscribe?lastSeq=0`),
    await RawStream.open(`${url}/subscribe?filter=${user.user}/*`),
    await RawStream.open(`${url}/events-stream?user=${user.user}&live=1`),
  ]
  await streams[2]!.until(() => streams[2]!.events().length === 1)
  const started = Date.now()
  const code = await server.stop()
  t.equal(code, 0, 'exit status 0')
  t.ok(Date.now() - started < 5000, 'within 5 s')
  for (const s of streams) {
    await s.all()
    t.equal(s.error, undefined, 'the stream ended cleanly')
  }
  t.equal(streams[0]!.events().length, 1)
})
