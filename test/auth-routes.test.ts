import t from 'tap'
import http from 'node:http'
import { newUser, startTestServer } from './helpers/server.js'
import type { Server } from '../src/server.js'
import { randomKeypair, sign, type Keypair } from '../src/auth/keys.js'
import { signAuthToken } from '../src/auth/token.js'
import { decodeSessionInfo } from '../src/auth/session-info.js'
import { formatCapabilities } from '../src/auth/capabilities.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { RawStream } from './helpers/feed.js'

/** `/signup`, `/session` and the admin route (SPEC §4), through the real server. */

const post = (server: Server, route: string, body: Uint8Array, headers: Record<string, string> = {}) =>
  fetch(server.url + route, { method: 'POST', body: Buffer.from(body), headers })

/** The AuthToken layout written out byte by byte, signed over [signedFrom..]. */
function handToken(kp: Keypair, caps: string, signedFrom: number, nowMs = Date.now()): Uint8Array {
  const text = Buffer.from(caps)
  if (text.length > 127) throw new Error('one-byte varint only')
  const ts = Buffer.alloc(8)
  ts.writeBigUInt64BE(BigInt(nowMs) * 1000n)
  const bytes = Buffer.concat([Buffer.alloc(64), Buffer.from('PUBKY:AUTH'), Buffer.from([0]), ts, kp.publicKey, Buffer.from([text.length]), text])
  Buffer.from(sign(bytes.subarray(signedFrom), kp.secretKey)).copy(bytes, 0)
  return bytes
}

function sessionCookie(res: Response, user: string): { secret: string; attributes: string } {
  const cookies = res.headers.getSetCookie()
  const mine = cookies.find((c) => c.startsWith(`${user}=`))
  if (mine === undefined) throw new Error(`no cookie for ${user} in ${JSON.stringify(cookies)}`)
  const [pair, ...attrs] = mine.split(';')
  return { secret: pair!.slice(user.length + 1), attributes: attrs.map((a) => a.trim()).join('; ') }
}

t.test('open sign-up: cookie named after the key, SessionInfo body, usable session', async (t) => {
  const server = await startTestServer(t)
  const kp = randomKeypair()
  const res = await post(server, '/signup', signAuthToken(kp, '/pub/app/:rw,/pub/x.txt:r'))
  t.equal(res.status, 200)
  const { secret } = sessionCookie(res, kp.z32)
  t.match(secret, /^[0-9A-HJKMNP-TV-Z]{26}$/, '16 random bytes in Crockford base32')
  const info = decodeSessionInfo(new Uint8Array(await res.arrayBuffer()))
  t.same([...info.publicKey], [...kp.publicKey], 'SessionInfo names the user')
  t.equal(formatCapabilities(info.capabilities), '/pub/app/:rw,/pub/x.txt:r')
  t.ok(Math.abs(info.createdAt / 1000 - Date.now()) < 60_000, 'created_at is now, in microseconds')
  const client = new HomeserverClient(server.url, kp, secret)
  t.equal((await client.request('PUT', '/pub/app/a', 'x')).status, 201, 'the session writes within its capabilities')
  t.equal((await client.request('PUT', '/pub/other', 'x')).status, 403)
  t.ok(await server.ctx.users.exists(kp.z32), 'the user exists')
  const again = await post(server, '/signup', signAuthToken(kp, '/:rw'))
  t.equal(again.status, 409, 'signing up twice')
  t.match(again.headers.get('content-type'), /^text\/plain/, 'auth errors are plain text')
})

t.test('token sign-up: refused without a token, accepted once with one', async (t) => {
  const server = await startTestServer(t, { SIGNUP_MODE: 'token', ADMIN_PASSWORD: 'hunter2' })
  const gen = () => fetch(`${server.url}/admin/generate_signup_token`, { headers: { 'x-admin-password': 'hunter2' } })
  const kp = randomKeypair()
  const without = await post(server, '/signup', signAuthToken(kp, '/:rw'))
  t.equal(without.status, 401, 'no signup token')
  t.notOk(await server.ctx.users.exists(kp.z32))
  t.equal((await post(server, '/signup?signup_token=AAAA-BBBB-CCCC', signAuthToken(kp, '/:rw'))).status, 401, 'an unknown token')
  t.equal((await post(server, '/signup?signup_token=nonsense', signAuthToken(kp, '/:rw'))).status, 400, 'a malformed token')

  const tokenRes = await gen()
  t.equal(tokenRes.status, 200)
  const token = await tokenRes.text()
  t.match(token, /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/)
  const ok = await post(server, `/signup?signup_token=${token}`, signAuthToken(kp, '/:rw'))
  t.equal(ok.status, 200)
  sessionCookie(ok, kp.z32)
  const other = randomKeypair()
  const reuse = await post(server, `/signup?signup_token=${token}`, signAuthToken(other, '/:rw'))
  t.equal(reuse.status, 401, 'a used token is refused')
  t.notOk(await server.ctx.users.exists(other.z32))
  const second = await (await gen()).text()
  t.not(second, token, 'each call makes a new token')
  t.equal((await post(server, `/signup?signup_token=${second}`, signAuthToken(other, '/:rw'))).status, 200)
  t.equal((await post(server, '/session', signAuthToken(kp, '/:rw'))).status, 200, 'sign-in needs no token')
})

t.test('the admin route: password required; absent without ADMIN_PASSWORD', async (t) => {
  const server = await startTestServer(t, { ADMIN_PASSWORD: 'correct horse' })
  const url = `${server.url}/admin/generate_signup_token`
  t.equal((await fetch(url)).status, 401, 'no password')
  t.equal((await fetch(url, { headers: { 'x-admin-password': 'wrong' } })).status, 401, 'wrong password')
  t.equal((await fetch(url, { headers: { 'x-admin-password': 'correct horsE' } })).status, 401, 'close is wrong')
  t.equal((await fetch(url, { headers: { 'x-admin-password': '' } })).status, 401, 'empty')
  t.equal((await fetch(url, { headers: { 'x-admin-password': 'correct horse' } })).status, 200)
  const closed = await startTestServer(t)
  t.equal((await fetch(`${closed.url}/admin/generate_signup_token`, { headers: { 'x-admin-password': 'anything' } })).status, 404)
  t.equal((await fetch(`${closed.url}/admin/generate_signup_token`)).status, 404)
})

t.test('sessions: sign-in, GET, DELETE', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const stranger = randomKeypair()
  t.equal((await post(server, '/session', signAuthToken(stranger, '/:rw'))).status, 404, 'sign-in of an unknown user')

  const noSession = await fetch(`${server.url}/session`, { headers: { 'pubky-host': alice.user } })
  t.equal(noSession.status, 404, 'GET /session without a session')
  const got = await alice.request('GET', '/session')
  t.equal(got.status, 200)
  const info = decodeSessionInfo(new Uint8Array(await got.arrayBuffer()))
  t.same([...info.publicKey], [...alice.keypair.publicKey])
  t.equal(formatCapabilities(info.capabilities), '/:rw')

  // A second session, with fewer capabilities; each is its own.
  const second = new HomeserverClient(server.url, alice.keypair)
  await second.signin('/pub/only/:rw')
  t.not(second.session, alice.session)
  const info2 = decodeSessionInfo(new Uint8Array(await (await second.request('GET', '/session')).arrayBuffer()))
  t.equal(formatCapabilities(info2.capabilities), '/pub/only/:rw')

  await alice.put('/pub/before', 'x')
  const del = await alice.request('DELETE', '/session')
  t.equal(del.status, 204)
  const cleared = del.headers.getSetCookie().find((c) => c.startsWith(`${alice.user}=`))
  t.match(cleared, /Max-Age=0/, 'the cookie is cleared')
  t.equal((await alice.request('PUT', '/pub/after', 'x')).status, 401, 'writes after sign-out')
  t.equal((await alice.request('GET', '/session')).status, 404)
  t.equal((await alice.request('DELETE', '/session')).status, 401, 'signing out twice')
  t.equal((await second.request('PUT', '/pub/only/x', 'x')).status, 201, 'the other session lives on')
  t.equal((await fetch(`${server.url}/session`, { method: 'DELETE', headers: { 'pubky-host': alice.user } })).status, 401, 'no cookie')
})

t.test('several cookies named after the user: each is tried', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  await alice.put('/priv/secret.txt', 'mine')
  const stale = new HomeserverClient(server.url, alice.keypair)
  await stale.signin()
  await stale.request('DELETE', '/session')
  const junk = 'Z'.repeat(26)
  const as = (cookie: string) => ({ 'pubky-host': alice.user, cookie })
  const orders = [
    `${alice.user}=${stale.session}; ${alice.user}=${alice.session}`,
    `${alice.user}=${junk}; ${bob.user}=${bob.session}; ${alice.user}=${alice.session}`,
    `${alice.user}=${bob.session}; ${alice.user}=${alice.session}`,
    `${alice.user}=; ${alice.user}=${alice.session}; ${alice.user}=${stale.session}`,
  ]
  for (const [i, cookie] of orders.entries()) {
    const put = await fetch(`${server.url}/pub/dup/${i}`, { method: 'PUT', headers: as(cookie), body: 'x' })
    t.equal(put.status, 201, `PUT with ${cookie.replaceAll(alice.user, 'alice').replaceAll(bob.user, 'bob')}`)
    const read = await fetch(`${server.url}/priv/secret.txt`, { headers: as(cookie) })
    t.equal(await read.text(), 'mine', 'a private read')
    const info = decodeSessionInfo(new Uint8Array(await (await fetch(`${server.url}/session`, { headers: as(cookie) })).arrayBuffer()))
    t.same([...info.publicKey], [...alice.keypair.publicKey], 'GET /session finds the live one')
    const s = await RawStream.open(`${server.url}/subscribe?filter=${alice.user}/priv/*&lastSeq=0&live=false`, { cookie })
    await s.all()
    t.equal(s.events().length, 1, "the owner's private stream")
  }
  const other = await fetch(`${server.url}/pub/dup/x`, { method: 'PUT', headers: as(`${alice.user}=${junk}; ${alice.user}=${bob.session}`), body: 'x' })
  t.equal(other.status, 403, "only someone else's live session: 403, as with one cookie")
  const none = await fetch(`${server.url}/pub/dup/x`, { method: 'PUT', headers: as(`${alice.user}=${junk}; ${alice.user}=${stale.session}`), body: 'x' })
  t.equal(none.status, 401, 'no live session among them: 401')
  const out = await fetch(`${server.url}/session`, { method: 'DELETE', headers: as(`${alice.user}=${stale.session}; ${alice.user}=${alice.session}`) })
  t.equal(out.status, 204, 'signing out with a stale cookie first')
  t.equal((await alice.request('PUT', '/pub/after', 'x')).status, 401, 'ends the live session')
})

t.test('AuthTokens: replay, wrong signature span, stale, future, malformed', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const kp = alice.keypair
  const token = signAuthToken(kp, '/:rw')
  t.equal((await post(server, '/session', token)).status, 200)
  const replay = await post(server, '/session', token)
  t.equal(replay.status, 400, 'a replayed token')
  t.match(replay.headers.get('content-type'), /^text\/plain/)

  const good = handToken(kp, '/:rw', 65)
  const ours = signAuthToken(kp, '/:rw')
  t.same([...good.subarray(64, 75), ...good.subarray(83)], [...ours.subarray(64, 75), ...ours.subarray(83)], 'the hand-built layout matches, timestamp aside')
  t.equal((await post(server, '/session', good)).status, 200, 'a hand-built token signed over [65..] is accepted')
  t.equal((await post(server, '/session', handToken(kp, '/:rw', 64))).status, 400, 'one signed over [64..] is not')
  t.equal((await post(server, '/session', handToken(kp, '/:rw', 75))).status, 400, 'nor one signed over [75..]')
  t.equal((await post(server, '/session', signAuthToken(kp, '/:rw', Date.now() - 200_000))).status, 400, '200 s old')
  t.equal((await post(server, '/session', signAuthToken(kp, '/:rw', Date.now() + 200_000))).status, 400, '200 s ahead')
  t.equal((await post(server, '/session', signAuthToken(kp, '/:rw', Date.now() - 120_000))).status, 200, '120 s old is within the skew')

  const tampered = signAuthToken(kp, '/pub/:r')
  tampered[tampered.length - 1] = 'w'.charCodeAt(0)
  t.equal((await post(server, '/session', tampered)).status, 400, 'capabilities changed after signing')
  const impostor = randomKeypair()
  const swapped = signAuthToken(impostor, '/:rw')
  Buffer.from(kp.publicKey).copy(swapped, 83)
  t.equal((await post(server, '/session', swapped)).status, 400, "someone else's key in a token they signed")
  t.equal((await post(server, '/session', new Uint8Array())).status, 400, 'empty body')
  t.equal((await post(server, '/session', new Uint8Array(300).fill(7))).status, 400, 'garbage')
  t.equal((await post(server, '/signup', new Uint8Array(20))).status, 400, 'garbage to /signup')
  t.equal((await post(server, '/session', new Uint8Array(64 * 1024))).status, 413, 'a body far past any token')
  t.equal((await alice.request('PUT', '/pub/still', 'x')).status, 201, 'the server is fine')
})

t.test('cookie attributes: Secure; SameSite=None only off localhost and IPs', async (t) => {
  const server = await startTestServer(t)
  const { port } = new URL(server.url)
  const attributes = (host: string) =>
    new Promise<string>((resolve, reject) => {
      const kp = randomKeypair()
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/signup', headers: { host }, setHost: false }, (res) => {
        res.resume()
        const cookie = (res.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${kp.z32}=`))
        if (res.statusCode !== 200 || cookie === undefined) reject(new Error(`${res.statusCode} for Host ${host}`))
        else resolve(cookie.split(';').slice(1).map((a) => a.trim()).sort().join('; '))
      })
      req.on('error', reject)
      req.end(Buffer.from(signAuthToken(kp, '/:rw')))
    })
  const local = 'HttpOnly; Path=/'
  const remote = 'HttpOnly; Path=/; SameSite=None; Secure'
  t.equal(await attributes('localhost'), local)
  t.equal(await attributes(`localhost:${port}`), local)
  t.equal(await attributes(`127.0.0.1:${port}`), local)
  t.equal(await attributes('10.1.2.3'), local)
  t.equal(await attributes(`[::1]:${port}`), local)
  t.equal(await attributes('example.com'), remote)
  t.equal(await attributes(`homeserver.example.com:${port}`), remote)
  t.equal(await attributes(`${randomKeypair().z32}:${port}`), remote, 'a z32 Host is a domain name')
})
