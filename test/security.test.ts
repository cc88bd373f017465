import t from 'tap'
import { randomBytes } from 'node:crypto'
import { newUser, startTestServer } from './helpers/server.js'
import { rawConversation, rawExchange, rawRequest, statusOf, type RawResponse } from './helpers/raw-http.js'
import { readSubscribe, openSse } from './helpers/sse.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { randomKeypair } from '../src/auth/keys.js'
import { signAuthToken } from '../src/auth/token.js'
import type { Server } from '../src/server.js'

/** The security matrix: each way in that must stay shut, tried explicitly through the real server. */

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

function plainError(t: Test, res: RawResponse, status: number, what: string): void {
  t.equal(res.status, status, `${what}: ${status}`)
  t.match(String(res.headers['content-type']), /^text\/plain/, `${what}: plain text`)
}

function jsonError(t: Test, res: RawResponse, status: number, code: string | undefined, what: string): void {
  t.equal(res.status, status, `${what}: ${status}`)
  t.match(String(res.headers['content-type']), /^application\/json/, `${what}: JSON`)
  const body = JSON.parse(res.body.toString()) as { error?: unknown; message?: unknown }
  t.type(body.message, 'string', `${what}: has a message`)
  if (code !== undefined) t.equal(body.error, code, `${what}: error ${code}`)
  else t.type(body.error, 'string', `${what}: has an error code`)
}

const cookieOf = (c: HomeserverClient, as = c.user) => `${as}=${c.session}`

async function world(t: Test, raw: Record<string, string> = {}) {
  const server = await startTestServer(t, raw)
  const alice = await newUser(server)
  const bob = await newUser(server)
  const scoped = await newUser(server, '/pub/a/:rw')
  const secret = `hush-${randomBytes(6).toString('hex')}`
  await alice.put(`/priv/${secret}.txt`, 'alice private')
  await alice.put(`/priv/dir/${secret}-inner.txt`, 'alice private, deeper')
  await alice.put('/pub/hello.txt', 'hello')
  return { server, alice, bob, scoped, secret }
}

t.test('capability escapes: a scope never reaches past itself', async (t) => {
  const { server, scoped } = await world(t)
  const h = { 'pubky-host': scoped.user, cookie: cookieOf(scoped) }
  const put = (path: string) => rawRequest(server.url, { method: 'PUT', path, headers: h, body: 'x' })
  t.equal((await put('/pub/a/ok.txt')).status, 201, 'inside the scope')
  t.equal((await put('/pub/a//ok2.txt')).status, 201, '`//` folds to one segment inside the scope')
  plainError(t, await put('/pub/ab'), 403, 'scope /pub/a/ does not cover /pub/ab')
  plainError(t, await put('/pub/ab/x.txt'), 403, 'nor /pub/ab/x.txt')
  plainError(t, await put('/pub/a'), 403, 'nor the folder name as a file')
  plainError(t, await put('/pub/a/../b.txt'), 403, '`..` resolves before the check')
  plainError(t, await put('/pub/a/%2e%2e/b.txt'), 403, '`%2e%2e` too')
  plainError(t, await put('/pub/a/%2E%2E%2Fb.txt'), 403, 'and an encoded slash')
  plainError(t, await put('/pub/a/../../priv/x.txt'), 403, 'no climbing into /priv/')
  plainError(t, await put('/pub/a/../../../x'), 400, 'no climbing above the root')
  plainError(t, await put('/pub/a/%zz'), 400, 'a percent-encoding that does not decode')
  plainError(t, await put('/pub/a/%c0%ae%c0%ae/x'), 400, 'nor overlong UTF-8 dots')
  plainError(t, await put('/pub/a/./../../etc/passwd'), 403, 'outside the writable roots')
  plainError(t, await put(`/storage/${scoped.user}/pub/a/../b.txt`), 403, 'path-addressed, same rule')
  // decoded once: `%252e%252e` is a file literally named `%2e%2e`, inside the scope
  t.equal((await put('/pub/a/%252e%252e')).status, 201, 'double encoding is just a name')
  const list = await scoped.list('/pub/', 'limit=100')
  t.same(list.map((l) => l.slice(`pubky://${scoped.user}`.length)).sort(), ['/pub/a/%2e%2e', '/pub/a/ok.txt', '/pub/a/ok2.txt'])
  const del = await rawRequest(server.url, { method: 'DELETE', path: '/pub/a/%2e%2e/hello.txt', headers: h })
  plainError(t, del, 403, 'DELETE escapes are refused the same way')
})

t.test("another user's cookie opens nothing", async (t) => {
  const { server, alice, bob, secret } = await world(t)
  const bobAsAlice = { 'pubky-host': alice.user, cookie: cookieOf(bob, alice.user) }
  plainError(t, await rawRequest(server.url, { method: 'PUT', path: '/pub/x.txt', headers: bobAsAlice, body: 'x' }), 403, "Bob's secret under Alice's name: PUT")
  plainError(t, await rawRequest(server.url, { method: 'DELETE', path: '/pub/hello.txt', headers: bobAsAlice }), 403, 'DELETE')
  plainError(t, await rawRequest(server.url, { path: `/priv/${secret}.txt`, headers: bobAsAlice }), 403, 'GET /priv/')
  plainError(t, await rawRequest(server.url, { path: '/priv/', headers: bobAsAlice }), 403, 'list /priv/')
  plainError(t, await rawRequest(server.url, { path: '/session', headers: bobAsAlice }), 404, 'GET /session')
  const bobOwn = { 'pubky-host': alice.user, cookie: cookieOf(bob) }
  plainError(t, await rawRequest(server.url, { method: 'PUT', path: '/pub/x.txt', headers: bobOwn, body: 'x' }), 401, "Bob's own cookie on Alice's host")
  plainError(t, await rawRequest(server.url, { path: `/storage/${alice.user}/priv/${secret}.txt`, headers: { cookie: cookieOf(bob) } }), 401, 'path-addressed')
  plainError(t, await rawRequest(server.url, { method: 'DELETE', path: '/session', headers: bobAsAlice }), 401, "signing Alice out with Bob's secret")
  t.equal((await alice.get('/pub/hello.txt')).length, 5, 'Alice still signed in, file intact')
})

t.test("a token for user A used on user B's host signs in A, never B", async (t) => {
  const { server, alice, bob } = await world(t)
  const token = signAuthToken(alice.keypair, '/:rw')
  const res = await fetch(`${server.url}/session`, { method: 'POST', headers: { 'pubky-host': bob.user }, body: Buffer.from(token) })
  t.equal(res.status, 200)
  const cookies = res.headers.getSetCookie()
  t.ok(cookies.every((c) => c.startsWith(`${alice.user}=`)), 'the cookie is named after A')
  const secret = cookies[0]!.split(';')[0]!.slice(alice.user.length + 1)
  const asBob = { 'pubky-host': bob.user, cookie: `${bob.user}=${secret}` }
  plainError(t, await rawRequest(server.url, { method: 'PUT', path: '/pub/stolen.txt', headers: asBob, body: 'x' }), 403, "A's session cannot write B's files")
  plainError(t, await rawRequest(server.url, { path: '/session', headers: asBob }), 404, "nor pass for B's session")
  // a token signed by A but carrying B's key does not verify
  const forged = Buffer.from(token)
  forged.set(bob.keypair.publicKey, 83)
  plainError(t, await rawRequest(server.url, { method: 'POST', path: '/session', body: forged }), 400, "A's signature over B's key")
})

t.test('/priv/ never leaks through a feed or a listing', async (t) => {
  const { server, alice, bob, scoped, secret } = await world(t)
  const leaks = (body: string | Buffer) => String(body).includes(secret)
  const url = server.url

  const feed = await rawRequest(url, { path: '/events/?limit=1000' })
  t.equal(feed.status, 200)
  t.notOk(leaks(feed.body), '/events/')
  t.match(feed.body.toString(), /PUT pubky:\/\/.*\/pub\/hello.txt/, '/events/ does carry the public write')

  // Each stream must answer 200 and carry the public event, or a clean refusal proves nothing.
  const publicOnly = (got: { status: number; events: { path: string }[] }, what: string) => {
    t.equal(got.status, 200, `${what}: 200`)
    t.same(got.events.map((e) => e.path), ['/pub/hello.txt'], `${what}: the public event, and only it`)
  }
  const everything = await readSubscribe(`${url}/subscribe?filter=*&lastSeq=0&live=false`)
  publicOnly(everything, '/subscribe *')
  t.notOk(everything.frames.some((f) => leaks(f.data ?? '')), '/subscribe *')
  const withCookie = await readSubscribe(`${url}/subscribe?filter=*&lastSeq=0&live=false`, { cookie: cookieOf(alice) })
  publicOnly(withCookie, "/subscribe * with Alice's own cookie")
  t.notOk(withCookie.frames.some((f) => leaks(f.data ?? '')), "/subscribe * even with Alice's own cookie")

  const filters = [`${alice.user}/*`, `${alice.user}/priv/*`, `${alice.user}/priv/${secret}.txt`, `*/priv/*`]
  const sessions: [string, Record<string, string>][] = [
    ['no session', {}],
    ["Bob's session under Alice's name", { cookie: cookieOf(bob, alice.user) }],
    ["Bob's own session", { cookie: cookieOf(bob) }],
    ['a junk cookie', { cookie: `${alice.user}=AAAAAAAAAAAAAAAAAAAAAAAAAA; x=y` }],
  ]
  for (const filter of filters) {
    for (const [who, headers] of sessions) {
      const got = await readSubscribe(`${url}/subscribe?filter=${encodeURIComponent(filter)}&lastSeq=0&live=false`, headers)
      const what = `/subscribe ${filter.replace(alice.user, 'alice')} with ${who}`
      t.notOk(got.frames.some((f) => leaks(f.data ?? '')) || leaks(got.body ?? ''), what)
      if (filter === `${alice.user}/*`) publicOnly(got, what)
      else t.same([got.status, got.events.length], [200, 0], `${what}: 200, no event`)
    }
  }
  // A session scoped to /pub/a/ of its own user reads its /pub/ events only, and its /priv/ none.
  await scoped.put('/pub/a/open.txt', 'x')
  const scopedPriv = await readSubscribe(`${url}/subscribe?filter=${scoped.user}/*&lastSeq=0&live=false`, { cookie: cookieOf(scoped) })
  t.equal(scopedPriv.events.length, 1, 'the scoped user sees its public event')
  // Alice's own session, but one that may read /pub/ only: her public events, none private
  const pubOnly = new HomeserverClient(url, alice.keypair)
  await pubOnly.signin('/pub/:rw')
  const narrow = await readSubscribe(`${url}/subscribe?filter=${alice.user}/*&lastSeq=0&live=false`, { cookie: cookieOf(pubOnly) })
  t.ok(narrow.events.length >= 1, 'a /pub/-only session of the owner follows the public events')
  t.notOk(narrow.frames.some((f) => leaks(f.data ?? '')), 'but not the private ones')
  const narrowStream = await rawRequest(url, { path: `/events-stream?user=${alice.user}&path=/priv/`, headers: { cookie: cookieOf(pubOnly) }, timeoutMs: 1500 })
  t.equal(narrowStream.status, 403, '/events-stream /priv/ with a /pub/-only session')
  t.notOk(leaks(narrowStream.body))
  // and the owner's own root session does see its private events (the test can fail)
  const own = await readSubscribe(`${url}/subscribe?filter=${alice.user}/*&lastSeq=0&live=false`, { cookie: cookieOf(alice) })
  t.ok(own.frames.some((f) => leaks(f.data ?? '')), "Alice's own session sees her /priv/ events")

  for (const [who, headers] of sessions) {
    for (const query of [`user=${alice.user}`, `user=${alice.user}&path=/priv/`, `user=${alice.user}&path=/`, `user=${alice.user}&path=/pub/../priv/`, `user=${alice.user}&reverse=true&path=/priv/`]) {
      const res = await rawRequest(url, { path: `/events-stream?${query}`, headers, timeoutMs: 1500 })
      t.notOk(leaks(res.body), `/events-stream ${query.replace(alice.user, 'alice')} with ${who}`)
      if (query.includes('priv')) t.ok(res.status === 401 || res.status === 403, `... refused (${res.status})`)
      else if (query.endsWith('path=/')) t.equal(res.status, 403, '... refused: / is neither /pub/ nor /priv/')
      else {
        t.equal(res.status, 200, '... answered 200')
        t.match(res.body.toString(), /^event: PUT\ndata: pubky:\/\/\w+\/pub\/hello\.txt\n/, '... with the public event')
      }
    }
  }
  const ownStream = await rawRequest(url, { path: `/events-stream?user=${alice.user}&path=/priv/`, headers: { cookie: cookieOf(alice) }, timeoutMs: 1500 })
  t.ok(leaks(ownStream.body), "Alice's own session reads her /priv/ over /events-stream")

  for (const [who, headers] of sessions) {
    for (const path of ['/priv/', '/priv/dir/', `/storage/${alice.user}/priv/`, '/pub/../priv/', `/priv/${secret}.txt`]) {
      const res = await rawRequest(url, { path: `${path}?pubky-host=${alice.user}`, headers })
      t.ok(res.status === 401 || res.status === 403, `GET ${path} with ${who}: ${res.status}`)
      t.notOk(leaks(res.body), `GET ${path} with ${who}: no names`)
    }
  }
  const pubList = await rawRequest(url, { path: '/pub/', headers: { 'pubky-host': alice.user } })
  t.notOk(leaks(pubList.body), 'a /pub/ listing holds no /priv/ names')
  const rootList = await rawRequest(url, { path: '/', headers: { 'pubky-host': alice.user } })
  t.notOk(leaks(rootList.body), 'nor does / answer with them')
})

t.test('signup tokens are single-use; admin routes need the password', async (t) => {
  const server = await startTestServer(t, { SIGNUP_MODE: 'token', ADMIN_PASSWORD: 'correct horse' })
  const admin = (headers: Record<string, string>) => rawRequest(server.url, { path: '/admin/generate_signup_token', headers })
  plainError(t, await admin({}), 401, 'no password')
  plainError(t, await admin({ 'x-admin-password': 'wrong' }), 401, 'wrong password')
  plainError(t, await admin({ 'x-admin-password': 'correct horsE' }), 401, 'almost right')
  const ok = await admin({ 'x-admin-password': 'correct horse' })
  t.equal(ok.status, 200)
  const token = ok.body.toString()
  t.match(token, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/)

  const first = new HomeserverClient(server.url, randomKeypair())
  await first.signup({ signupToken: token })
  const second = new HomeserverClient(server.url, randomKeypair())
  const status = (p: Promise<unknown>) => p.then(() => 200, (err: { status?: number }) => err.status)
  t.equal(await status(second.signup({ signupToken: token })), 401, 'a used token is refused')
  t.equal(await status(second.signup()), 401, 'no token, no signup')
  t.equal(await status(second.signup({ signupToken: 'AAAA-AAAA-AAAA' })), 401, 'an unknown token is refused')
  await first.put('/pub/ok.txt', 'the first user works')

  const closed = await startTestServer(t)
  const none = await rawRequest(closed.url, { path: '/admin/generate_signup_token', headers: { 'x-admin-password': '' } })
  t.equal(none.status, 404, 'no ADMIN_PASSWORD: admin routes do not exist')
})

t.test('oversized headers and bodies are refused early, and the server keeps serving', async (t) => {
  const server = await startTestServer(t, { MAX_BODY: '1MiB' })
  const alice = await newUser(server)
  const big = await rawExchange(server.url, `GET /info HTTP/1.1\r\nHost: x\r\nX-Junk: ${'a'.repeat(17 * 1024)}\r\n\r\n`)
  t.equal(statusOf(big), 431, 'headers over 16 KiB: 431')
  t.equal((await fetch(`${server.url}/info`)).status, 200, 'still serving')

  // a declared body over MAX_BODY is refused before a byte of it is sent
  const head = `PUT /pub/big.bin HTTP/1.1\r\nHost: x\r\npubky-host: ${alice.user}\r\ncookie: ${cookieOf(alice)}\r\ncontent-length: ${2 * 1024 * 1024}\r\n\r\n`
  const early = await rawExchange(server.url, head, 3000)
  t.equal(statusOf(early), 413, 'Content-Length over MAX_BODY: 413 without reading the body')
  // a chunked body that grows past MAX_BODY is cut off
  const chunked = await fetch(`${server.url}/pub/big.bin`, {
    method: 'PUT', headers: alice.headers(), duplex: 'half',
    body: new ReadableStream({
      pull(c) {
        c.enqueue(new Uint8Array(256 * 1024))
      },
    }),
  } as RequestInit).then((r) => r.status, () => 'reset')
  t.ok(chunked === 413 || chunked === 'reset', `a streamed body past MAX_BODY is refused (${chunked})`)
  t.equal((await alice.request('GET', '/pub/big.bin')).status, 404, 'nothing was stored')
  const auth = await rawRequest(server.url, { method: 'POST', path: '/session', body: Buffer.alloc(64 * 1024) })
  plainError(t, auth, 413, 'a token body over 16 KiB')
  const declared = await rawExchange(server.url, 'POST /signup HTTP/1.1\r\nHost: x\r\ncontent-length: 100000000\r\n\r\n', 3000)
  t.equal(statusOf(declared), 413, 'a token body declared huge: 413 before a byte is sent')
  t.match(declared.toString(), /connection: close/i, 'and the connection closes')
  await alice.put('/pub/small.txt', 'still writing')
  t.equal((await fetch(`${server.url}/info`)).status, 200, 'still serving')
})

t.test("requests Node cannot parse: a contract-shaped answer, and the connection closes", async (t) => {
  const server = await startTestServer(t)
  const next = 'GET /info HTTP/1.1\r\nHost: x\r\n\r\n'
  const cases: [string, string, number, string][] = [
    ['an unknown method', 'FOO /info HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'BadRequest'],
    ['headers over 16 KiB', `GET /info HTTP/1.1\r\nHost: x\r\nX-Junk: ${'a'.repeat(17 * 1024)}\r\n\r\n`, 431, 'HeadersTooLarge'],
    ['a control character in a header', 'GET /info HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n', 400, 'BadRequest'],
    ['broken chunked framing', 'PUT /pub/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, 'BadRequest'],
  ]
  for (const [what, bytes, status, code] of cases) {
    // a second request follows on the same connection: it must not be answered
    const { bytes: raw, closedByServer } = await rawConversation(server.url, bytes + next, 10_000)
    const text = raw.toString('latin1')
    t.equal(statusOf(raw), status, `${what}: ${status}`)
    t.match(text, /\r\nconnection: close\r\n/i, `${what}: says the connection closes`)
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as object
    t.match(body, { error: code, message: String }, `${what}: {error, message}`)
    t.same(Object.keys(body).sort(), ['error', 'message'], `${what}: and nothing else`)
    t.ok(closedByServer, `${what}: the server closed the connection`)
    t.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, `${what}: nothing after it was answered`)
  }
  t.equal((await fetch(`${server.url}/info`)).status, 200, 'still serving')
})

t.test('per-IP stream limit: the fourth stream of three allowed is 429', async (t) => {
  const server = await startTestServer(t, { MAX_STREAMS_PER_IP: '3' })
  const alice = await newUser(server)
  const open = [
    openSse(`${server.url}/subscribe?filter=*`, {}, () => {}),
    openSse(`${server.url}/subscribe/${alice.user}/*`, {}, () => {}),
    openSse(`${server.url}/events-stream?user=${alice.user}&live=true`, {}, () => {}),
  ]
  for (const s of open) t.equal((await s.response).statusCode, 200)
  const fourth = await rawRequest(server.url, { path: '/subscribe?filter=*', timeoutMs: 2000 })
  jsonError(t, fourth, 429, 'TooManyRequests', 'the fourth /subscribe')
  const fourthUpstream = await rawRequest(server.url, { path: `/events-stream?user=${alice.user}&live=true`, timeoutMs: 2000 })
  plainError(t, fourthUpstream, 429, 'the fourth /events-stream')
  open[0]!.close()
  await open[0]!.ended
  // the slot comes back once the server sees the close
  let again: RawResponse | undefined
  for (let i = 0; i < 50; i++) {
    again = await rawRequest(server.url, { path: '/subscribe?filter=*&live=false' })
    if (again.status === 200) break
    await new Promise((r) => setTimeout(r, 20))
  }
  t.equal(again!.status, 200, 'a closed stream frees its slot')
  for (const s of open) s.close()
})

t.test('sign-up and sign-in are rate limited per IP', async (t) => {
  const server = await startTestServer(t, { SIGNUP_RATE_LIMIT: '5' })
  const statuses: number[] = []
  let last: RawResponse | undefined
  for (let i = 0; i < 6; i++) {
    last = await rawRequest(server.url, { method: 'POST', path: '/signup', body: Buffer.from(signAuthToken(randomKeypair(), '/:rw')) })
    statuses.push(last.status)
  }
  t.same(statuses, [200, 200, 200, 200, 200, 429])
  plainError(t, last!, 429, 'the sixth sign-up')
  // sign-in counts on its own: five unknown users (404), then 429
  const signins: number[] = []
  for (let i = 0; i < 6; i++) {
    last = await rawRequest(server.url, { method: 'POST', path: '/session', body: Buffer.from(signAuthToken(randomKeypair(), '/:rw')) })
    signins.push(last.status)
  }
  t.same(signins, [404, 404, 404, 404, 404, 429])
  plainError(t, last!, 429, 'the sixth sign-in')
  t.equal((await fetch(`${server.url}/info`)).status, 200, 'other routes are not limited')
})
