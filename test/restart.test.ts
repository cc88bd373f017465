import t from 'tap'
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { headOf, newUser, startTestServer, tempDir } from './helpers/server.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { randomKeypair } from '../src/auth/keys.js'
import { signAuthToken } from '../src/auth/token.js'
import { ChildServer } from './helpers/child-server.js'
import { TEST_ENGINE, engineSettings } from './helpers/engine.js'
import { AckedWrites, SentPuts } from './helpers/acked-writes.js'
import { eventLine } from './helpers/event-checks.js'
import { readSubscribe } from './helpers/sse.js'
import { until } from './helpers/until.js'

/** What must survive a restart on the same data folder (SPEC §3, §5): files, sessions, the seq. */


t.test('files, blobs, sessions, users and the seq survive a restart', async (t) => {
  const dir = tempDir(t)
  const first = await startTestServer(t, { DATA_DIR: dir, SIGNUP_MODE: 'token', ADMIN_PASSWORD: 'pw' })
  const key = first.ctx.keypair.z32
  const token = await (await fetch(`${first.url}/admin/generate_signup_token`, { headers: { 'x-admin-password': 'pw' } })).text()
  const unused = await (await fetch(`${first.url}/admin/generate_signup_token`, { headers: { 'x-admin-password': 'pw' } })).text()
  const alice = new HomeserverClient(first.url, randomKeypair())
  await alice.signup({ signupToken: token })
  const big = randomBytes(200 * 1024 + 3)
  const acked = new AckedWrites()
  await acked.put(alice, '/pub/small.txt', 'small')
  await acked.put(alice, '/pub/big.bin', big)
  await acked.put(alice, '/priv/secret', 'shh')
  await acked.put(alice, '/pub/gone', 'x')
  await acked.delete(alice, '/pub/gone')
  const etag = (await alice.request('HEAD', '/pub/big.bin')).headers.get('etag')
  const head = acked.events.at(-1)!.seq
  const usage = (await first.ctx.users.get(alice.user))!.usage
  t.equal(await headOf(first.url), head, 'five acknowledged writes, five events')
  await first.close()

  const second = await startTestServer(t, { DATA_DIR: dir, SIGNUP_MODE: 'token', ADMIN_PASSWORD: 'pw' })
  const again = new HomeserverClient(second.url, alice.keypair, alice.session)
  t.equal(second.ctx.keypair.z32, key, 'the homeserver key is kept in the data folder')
  t.equal(await headOf(second.url), head, 'head is where it was')
  t.equal(Buffer.from(await again.get('/pub/small.txt')).toString(), 'small')
  const bigRes = await again.request('GET', '/pub/big.bin')
  t.equal(bigRes.headers.get('etag'), etag)
  t.ok(Buffer.from(await bigRes.arrayBuffer()).equals(big), 'the blob is whole')
  t.equal(Buffer.from(await again.get('/priv/secret')).toString(), 'shh', 'the old session cookie still reads /priv/')
  t.equal((await again.request('GET', '/pub/gone')).status, 404)
  t.same(await again.list('/pub/'), [`pubky://${alice.user}/pub/big.bin`, `pubky://${alice.user}/pub/small.txt`])
  t.equal((await second.ctx.users.get(alice.user))!.usage, usage, 'usage is kept')

  const after = await acked.put(again, '/pub/after.txt', 'after')
  t.equal(await (await fetch(`${second.url}/events/?cursor=${head}`)).text(), `PUT pubky://${alice.user}/pub/after.txt\ncursor: ${after.seq}`, 'the next event is head + 1')
  const all = await readSubscribe(`${second.url}/subscribe?filter=${alice.user}/*&lastSeq=0&live=false`, again.headers())
  t.same(all.events.map(eventLine), acked.events.map(eventLine), 'every acknowledged write once, no seq reused or skipped')

  const reused = new HomeserverClient(second.url, randomKeypair())
  const refused = await reused.signup({ signupToken: token }).then(() => undefined, (err: { status?: number }) => err)
  t.equal(refused?.status, 401, 'a used signup token stays used')
  await reused.signup({ signupToken: unused })
  t.equal((await reused.request('PUT', '/pub/new-user.txt', 'hi')).status, 201, 'an unused one still works: its user writes with the new session')
  const signin = new HomeserverClient(second.url, alice.keypair)
  await signin.signin()
  t.equal((await signin.request('PUT', '/pub/signed-in-again.txt', 'yes')).status, 201, 'the user can sign in again and write with the new session')
})

t.test('an AuthToken accepted before a restart is refused after it', async (t) => {
  const dir = tempDir(t)
  const first = await startTestServer(t, { DATA_DIR: dir })
  const alice = await newUser(first)
  const token = Buffer.from(signAuthToken(alice.keypair, '/:rw'))
  t.equal((await fetch(`${first.url}/session`, { method: 'POST', body: token })).status, 200, 'accepted once')
  await first.close()
  const second = await startTestServer(t, { DATA_DIR: dir })
  const replay = await fetch(`${second.url}/session`, { method: 'POST', body: token })
  t.equal(replay.status, 400, 'the same token after a restart: refused')
  t.match(await replay.text(), /already used/)
  t.same(replay.headers.getSetCookie(), [], 'and no session given')
})

t.test('an orphan blob file is swept at start; referenced blobs are kept', { skip: TEST_ENGINE !== 'leveldb' && 'blob files in the data folder are the LevelDB engine\'s (the store conformance suite sweeps PostgreSQL blobs)' }, async (t) => {
  const dir = tempDir(t)
  const first = await startTestServer(t, { DATA_DIR: dir })
  const alice = await newUser(first)
  const big = randomBytes(100 * 1024)
  await alice.put('/pub/keep.bin', big)
  await first.close()
  const blobs = join(dir, 'blobs')
  const kept = readdirSync(blobs)
  t.equal(kept.length, 1)
  const orphan = join(blobs, 'ab'.repeat(16))
  writeFileSync(orphan, randomBytes(70 * 1024))
  writeFileSync(join(blobs, 'not-even-an-id'), 'x')
  mkdirSync(join(blobs, 'a-folder'))

  const second = await startTestServer(t, { DATA_DIR: dir })
  t.notOk(existsSync(orphan), 'the orphan is gone')
  t.same(readdirSync(blobs).sort(), [...kept, 'a-folder'].sort(), 'only the referenced blob is left, and a stray folder does not stop start-up')
  const again = new HomeserverClient(second.url, alice.keypair, alice.session)
  t.ok(Buffer.from(await again.get('/pub/keep.bin')).equals(big))
})

t.test('a killed server loses nothing it acknowledged', async (t) => {
  const dir = tempDir(t)
  const child = await ChildServer.start({ dataDir: dir, env: { ...(await engineSettings(t, dir)), SIGNUP_RATE_LIMIT: '100000' } })
  t.teardown(() => child.kill())
  const url = child.url
  const alice = new HomeserverClient(url, randomKeypair())
  await alice.signup()
  const sent = new SentPuts()
  const acked = () => sent.acked().length
  // Writes in flight when the process dies may or may not land; acknowledged ones must.
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; ; i++) {
      const path = `/pub/k/${w}-${i}`
      if (!(await sent.put(alice, path, i % 5 === 0 ? randomBytes(80 * 1024) : Buffer.from(path)))) return
    }
  })
  await until(() => acked() >= 100, '100 acknowledged writes', 30_000, acked)
  await child.kill()
  await Promise.all(writers)

  const server = await startTestServer(t, { DATA_DIR: dir })
  const again = new HomeserverClient(server.url, alice.keypair, alice.session)
  const listed = new Set((await again.list('/pub/k/', 'limit=1000')).map((u) => u.slice(`pubky://${alice.user}`.length)))
  t.ok(sent.acked().every((p) => listed.has(p.path)), `all ${acked()} acknowledged writes are there`)
  // Every write was a PUT of a new path by alice: her events are her writes that landed, once each.
  const { events } = await readSubscribe(`${server.url}/subscribe?filter=${alice.user}/*&lastSeq=0&live=false`, again.headers())
  const head = await headOf(server.url)
  t.same(events.map((ev) => Number(ev.seq)), Array.from({ length: head }, (_, i) => i + 1), 'the log has no gap up to the head')
  const landed = await sent.landed(server.url)
  const file = (ev: { path: string; contentHash?: string }) => `${ev.path} ${ev.contentHash}`
  t.same(events.map(file).sort(), landed.map(file).sort(), 'one event for each write that landed, each acknowledged one among them')
  t.same([...listed].sort(), landed.map((p) => p.path).sort(), 'and every stored file is one of them')
  const after = await new AckedWrites(head).put(again, '/pub/after', 'x')
  const next = await readSubscribe(`${server.url}/subscribe?filter=${alice.user}/*&lastSeq=${head}&live=false`, again.headers())
  t.same(next.events.map(eventLine), [eventLine(after)], 'the seq continues')
})
