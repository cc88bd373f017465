import t from 'tap'
import net from 'node:net'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AuthFlowKind, Client, Keypair, Pubky, PublicKey, Session } from '@synonymdev/pubky'
import { keypairFromSecret, sign } from '../src/auth/keys.js'
import { decodeSessionInfo } from '../src/auth/session-info.js'
import { formatCapabilities } from '../src/auth/capabilities.js'
import { startTestServer, tempDir, type Teardown } from './helpers/server.js'

/**
 * @synonymdev/pubky 0.6.0, unmodified, against a real Hearth in testnet mode. Each server runs
 * its own pkarr relay on a free port, and each client is pointed at it, so these tests never
 * need the fixed testnet port (one guarded test checks `Pubky.testnet()` on it).
 *
 * The package replaces `globalThis.fetch` with one cookie jar for the whole process: every
 * session cookie of `localhost` goes with every request, whichever user it is for.
 */

interface Testnet {
  url: string
  relay: string
  hs: PublicKey
  pubky: Pubky
  client: Client
}

async function testnet(t: Teardown, raw: Record<string, string> = {}): Promise<Testnet> {
  const server = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '0', ...raw })
  const client = new Client({ pkarr: { relays: [server.relays[0]!] } })
  return { url: server.url, relay: server.relays[0]!, hs: PublicKey.from(server.ctx.keypair.z32), pubky: Pubky.withClient(client), client }
}

/** 'ok', the HTTP status the client reports, or the error's name and message. */
async function outcome(p: Promise<unknown>): Promise<number | string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    const data = (err as { data?: unknown }).data
    if (typeof data === 'object' && data !== null && 'statusCode' in data) return (data as { statusCode: number }).statusCode
    return `${(err as Error).name}: ${(err as Error).message}`
  }
}

const net0 = await testnet(t)
const { pubky, hs } = net0
const alice = Keypair.random()
const a = alice.publicKey.z32()
const signer = pubky.signer(alice)
let session: Session

t.test('signup (open mode) gives a root session and publishes the user', async (t) => {
  session = await signer.signup(hs, null)
  t.equal(session.info.publicKey.z32(), a)
  t.same(session.info.capabilities, ['/:rw'])
  t.equal((await signer.pkdns.getHomeserver())?.z32(), hs.z32(), 'its own record names this homeserver')
  t.equal((await pubky.getHomeserverOf(alice.publicKey))?.z32(), hs.z32(), 'and anyone resolves it')
  t.equal(await outcome(pubky.signer(alice).signup(hs, null)), 409, 'signing up twice is a conflict')
})

const bytes = Uint8Array.from([0, 1, 2, 0xfe, 0xff, 0x80, 0x0a])
const json = { hello: 'world', n: [1, 2, 3], nested: { ok: true } }
const text = 'hello, hearth ✓'

t.test('writes text, JSON and bytes; reads them back by session and publicly', async (t) => {
  const s = session.storage
  await s.putText('/pub/app/note.txt', text)
  await s.putJson('/pub/app/data.json', json)
  await s.putBytes('/pub/app/blob.bin', bytes)

  t.equal(await s.getText('/pub/app/note.txt'), text)
  t.same(await s.getJson('/pub/app/data.json'), json)
  t.same(await s.getBytes('/pub/app/blob.bin'), bytes)
  t.same(await pubky.publicStorage.getJson(`pubky${a}/pub/app/data.json`), json, 'pubky<z32>/… address')
  t.same(await pubky.publicStorage.getBytes(`pubky://${a}/pub/app/blob.bin`), bytes, 'pubky://<z32>/… address')
  t.equal(await pubky.publicStorage.getText(`pubky${a}/pub/app/note.txt`), text)

  // what the server stored, seen without the client
  const raw = await fetch(`${net0.url}/storage/${a}/pub/app/blob.bin`)
  t.same(new Uint8Array(await raw.arrayBuffer()), bytes)
  t.same(await (await fetch(`${net0.url}/storage/${a}/pub/app/data.json`)).json(), json)
})

t.test('exists and stats (HEAD) agree with the stored file', async (t) => {
  const s = session.storage
  t.equal(await s.exists('/pub/app/note.txt'), true)
  t.equal(await s.exists('/pub/app/missing.txt'), false)
  t.equal(await pubky.publicStorage.exists(`pubky${a}/pub/app/data.json`), true)
  t.equal(await pubky.publicStorage.exists(`pubky${a}/pub/app/missing.json`), false)

  for (const [path, length] of [['/pub/app/note.txt', Buffer.byteLength(text)], ['/pub/app/blob.bin', bytes.length]] as const) {
    const stats = await s.stats(path)
    const head = await fetch(`${net0.url}/storage/${a}${path}`, { method: 'HEAD' })
    t.equal(stats?.contentLength, length, `${path}: its size`)
    t.equal(stats?.contentType, head.headers.get('content-type'))
    t.equal(stats?.etag, head.headers.get('etag')!.replaceAll('"', ''))
    t.equal(stats?.lastModifiedMs, Date.parse(head.headers.get('last-modified')!))
  }
  const pub = await pubky.publicStorage.stats(`pubky${a}/pub/app/data.json`)
  t.equal(pub?.contentLength, JSON.stringify(json).length)
  t.match(pub?.contentType, /^application\/json/)
  t.equal(await s.stats('/pub/app/missing.txt'), undefined)
})

t.test('lists: plain, shallow, reverse, limit, cursors', async (t) => {
  const s = session.storage
  await s.putText('/pub/app/dir/a.txt', 'a')
  await s.putText('/pub/app/dir/b.txt', 'b')
  const url = (p: string) => `pubky://${a}/pub/app/${p}`

  const all = ['blob.bin', 'data.json', 'dir/a.txt', 'dir/b.txt', 'note.txt'].map(url)
  t.same(await s.list('/pub/app/'), all, 'every file below, in byte order')
  t.same(await pubky.publicStorage.list(`pubky${a}/pub/app/`), all, 'the same publicly')
  t.same(await s.list('/pub/app/', null, false, null, true), ['blob.bin', 'data.json', 'dir/', 'note.txt'].map(url), 'shallow')
  t.same(await s.list('/pub/app/', null, true, 2, true), ['note.txt', 'dir/'].map(url), 'shallow, reverse, limit 2')
  t.same(await s.list('/pub/app/', null, true, 2, false), ['note.txt', 'dir/b.txt'].map(url), 'reverse, limit 2')

  t.same(await s.list('/pub/app/', 'data.json'), all.slice(2), 'a cursor relative to the directory')
  t.same(await s.list('/pub/app/', url('data.json')), all.slice(2), 'a full pubky:// cursor')
  t.same(await s.list('/pub/app/', 'dir/', false, null, true), ['note.txt'].map(url), 'a shallow cursor past a directory')
  t.same(await s.list('/pub/app/', url('dir/a.txt'), true), all.slice(0, 2).reverse(), 'a cursor going backwards')

  // pages of two, each cursor the last entry of the page before, until a short page
  const pages: string[][] = []
  let cursor: string | null = null
  for (;;) {
    const page: string[] = await pubky.publicStorage.list(`pubky${a}/pub/app/`, cursor, false, 2)
    pages.push(page)
    if (page.length < 2) break
    cursor = page[page.length - 1]!
  }
  t.same(pages, [all.slice(0, 2), all.slice(2, 4), all.slice(4)])
})

t.test('delete', async (t) => {
  const s = session.storage
  await s.delete('/pub/app/blob.bin')
  t.equal(await s.exists('/pub/app/blob.bin'), false)
  t.equal(await outcome(pubky.publicStorage.getBytes(`pubky${a}/pub/app/blob.bin`)), 404)
  t.equal(await outcome(s.delete('/pub/app/blob.bin')), 404, 'deleting what is absent')
  t.equal((await fetch(`${net0.url}/storage/${a}/pub/app/blob.bin`)).status, 404)
})

t.test('export, restore, sign out, sign in', async (t) => {
  const exported = session.export()
  const restored = await pubky.restoreSession(exported)
  t.equal(restored.info.publicKey.z32(), a)
  t.same(restored.info.capabilities, ['/:rw'])
  await restored.storage.putText('/pub/app/restored.txt', 'back')
  // Session.restore takes ownership of the client it is given (its handle is spent), so it gets its own.
  const viaSession = await Session.restore(exported, new Client({ pkarr: { relays: [net0.relay] } }))
  t.equal(await viaSession.storage.getText('/pub/app/restored.txt'), 'back')

  await session.signout()
  t.equal(await outcome(session.storage.putText('/pub/app/after.txt', 'x')), 401, 'a write after sign-out')
  t.equal(await outcome(restored.storage.putText('/pub/app/after.txt', 'x')), 401, 'the restored copy is signed out too')
  // an authentication failure, which a network error (RequestError) would not pass for
  t.match(await outcome(pubky.restoreSession(exported)), /^AuthenticationError: /, 'nothing left to restore')
  t.equal(await pubky.publicStorage.exists(`pubky${a}/pub/app/after.txt`), false)

  const again = await signer.signin()
  t.same(again.info.capabilities, ['/:rw'])
  await again.storage.putText('/pub/app/after.txt', 'signed in')
  t.equal(await pubky.publicStorage.getText(`pubky${a}/pub/app/after.txt`), 'signed in')

  const blocking = await signer.signinBlocking()
  await blocking.storage.putText('/pub/app/blocking.txt', 'signed in, blocking')
  t.equal(await blocking.storage.getText('/pub/app/blocking.txt'), 'signed in, blocking')
  t.equal((await signer.pkdns.getHomeserver())?.z32(), hs.z32(), 'sign-in republished the same homeserver')
  session = blocking
})

t.test('two users in one process each write only their own files', async (t) => {
  const bob = Keypair.random()
  const b = bob.publicKey.z32()
  const bobSession = await pubky.signer(bob).signup(hs, null)
  await bobSession.storage.putText('/pub/app/bob.txt', 'bob')
  await session.storage.putText('/pub/app/alice.txt', 'alice')

  t.same(await bobSession.storage.list('/pub/app/'), [`pubky://${b}/pub/app/bob.txt`])
  t.notOk((await session.storage.list('/pub/app/')).some((u) => u.includes(b)))
  t.equal(await pubky.publicStorage.getText(`pubky${b}/pub/app/bob.txt`), 'bob', 'each reads the other publicly')
  t.equal(await pubky.publicStorage.getText(`pubky${a}/pub/app/alice.txt`), 'alice')

  // The shared jar would present Bob's own cookie for his space, so Bob signs out first:
  // what is left is Alice's cookie, and the server takes only the cookie named after the user.
  await bobSession.signout()
  const intrusion = await net0.client.fetch(`https://_pubky.${b}/pub/app/intruder.txt`, { method: 'PUT', body: 'x', credentials: 'include' })
  t.equal(intrusion.status, 401, "Alice's session does not open Bob's space")
  t.equal(await outcome(bobSession.storage.putText('/pub/app/bob2.txt', 'x')), 401)
  t.same(await pubky.publicStorage.list(`pubky${b}/pub/app/`), [`pubky://${b}/pub/app/bob.txt`], "Bob's files are unchanged")
  t.equal(await session.storage.getText('/pub/app/alice.txt'), 'alice', 'and Alice is still signed in')
})

t.test('signup with a signup token', async (t) => {
  const gated = await testnet(t, { SIGNUP_MODE: 'token', ADMIN_PASSWORD: 'open sesame' })
  const newToken = async () => {
    const res = await fetch(`${gated.url}/admin/generate_signup_token`, { headers: { 'x-admin-password': 'open sesame' } })
    t.equal(res.status, 200)
    return res.text()
  }
  const user = Keypair.random()
  const signer = gated.pubky.signer(user)
  t.equal(await outcome(signer.signup(gated.hs, null)), 401, 'no token')
  t.equal(await outcome(signer.signup(gated.hs, 'AAAA-BBBB-CCCC')), 401, 'an unknown token')

  const token = await newToken()
  t.match(token, /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/)
  const s = await signer.signup(gated.hs, token)
  await s.storage.putText('/pub/invited.txt', 'in')
  t.equal(await gated.pubky.publicStorage.getText(`pubky${user.publicKey.z32()}/pub/invited.txt`), 'in')
  t.equal(await outcome(gated.pubky.signer(Keypair.random()).signup(gated.hs, token)), 401, 'a token is used once')
  t.equal(await outcome(gated.pubky.signer(Keypair.random()).signup(gated.hs, await newToken())), 'ok')
})

t.test('an app session from the auth flow has only the capabilities it asked for', async (t) => {
  const relay = await startHttpRelay(t)
  const user = Keypair.random()
  await pubky.signer(user).signup(hs, null)

  const flow = pubky.startAuthFlow('/pub/app/:rw', AuthFlowKind.signin(), relay)
  const approved = flow.awaitApproval()
  await pubky.signer(user).approveAuthRequest(flow.authorizationUrl)
  const app = await approved
  t.same(app.info.capabilities, ['/pub/app/:rw'])
  t.equal(await outcome(app.storage.putText('/pub/app/in-scope.txt', 'yes')), 'ok')
  t.equal(await outcome(app.storage.putText('/pub/other/out-of-scope.txt', 'no')), 403)
  t.equal(await pubky.publicStorage.exists(`pubky${user.publicKey.z32()}/pub/other/out-of-scope.txt`), false)
})

t.test("the server takes the official signer's tokens, once, and refuses one signed over [64..]", async (t) => {
  const relay = await startHttpRelay(t)
  const user = Keypair.random()
  const z = user.publicKey.z32()
  await pubky.signer(user).signup(hs, null)
  const officialToken = async (caps: '/:rw' | '/pub/app/:rw') => {
    const flow = pubky.startAuthFlow(caps, AuthFlowKind.signin(), relay)
    const token = flow.awaitToken()
    await pubky.signer(user).approveAuthRequest(flow.authorizationUrl)
    return (await token).toBytes()
  }
  const post = (body: Uint8Array) => fetch(`${net0.url}/session`, { method: 'POST', body: Buffer.from(body) })

  const first = await officialToken('/pub/app/:rw')
  const second = await officialToken('/:rw')
  const forged = Uint8Array.from(second)
  forged.set(sign(second.subarray(64), keypairFromSecret(user.secret()).secretKey), 0)
  t.notSame(forged.subarray(0, 64), second.subarray(0, 64), 'only the signature differs')
  t.same(forged.subarray(64), second.subarray(64))
  const refused = await post(forged)
  t.equal(refused.status, 400, 'a signature over [64..] is refused')
  t.equal(refused.headers.get('set-cookie'), null)

  const res = await post(first)
  t.equal(res.status, 200)
  t.match(res.headers.get('set-cookie'), new RegExp(`^${z}=[^;]+; HttpOnly; Path=/`))
  const info = decodeSessionInfo(new Uint8Array(await res.arrayBuffer()))
  t.equal(formatCapabilities(info.capabilities), '/pub/app/:rw')
  t.equal((await post(first)).status, 400, 'a token is accepted once')
  t.equal((await post(second)).status, 200, 'the unforged token was never consumed by the forgery')
})

t.test('a browser build of the client gets its preflights answered', async (t) => {
  const res = await fetch(`${net0.url}/pub/app/note.txt`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'pubky-host,content-type' },
  })
  t.equal(res.status, 204)
  t.equal(res.headers.get('access-control-allow-origin'), 'https://app.example')
  t.equal(res.headers.get('access-control-allow-credentials'), 'true')
  t.match(res.headers.get('access-control-allow-methods'), /PUT/)
  t.match(res.headers.get('access-control-allow-headers'), /pubky-host/i)
})

t.test('a busy relay port stops the start and leaves nothing open', async (t) => {
  const holder = net.createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => holder.close(resolve)))
  const busy = String((holder.address() as AddressInfo).port)
  const dir = tempDir(t)
  await t.rejects(startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: busy, DATA_DIR: dir }), { code: 'EADDRINUSE', setting: 'PKARR_RELAY_PORT' })
  // the failed start released the data folder's lock, so the same folder opens again
  const server = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '0', DATA_DIR: dir })
  t.equal((await fetch(`${server.url}/info`)).status, 200)
})

// Pubky.testnet() has the relay port 15411 built in, so this one test cannot take a free port:
// it binds 15411 directly (no probe that another process could race) and is skipped when
// something else holds it.
const onFixedPort = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '15411' }).catch((err: { code?: string }) => {
  if (err.code === 'EADDRINUSE') return undefined
  throw err
})
t.test('Pubky.testnet() on the fixed relay port', { skip: onFixedPort === undefined && 'port 15411 is busy; Pubky.testnet() needs it' }, async (t) => {
  const server = onFixedPort!
  const pubky = Pubky.testnet('127.0.0.1')
  const user = Keypair.random()
  const s = await pubky.signer(user).signup(PublicKey.from(server.ctx.keypair.z32), null)
  await s.storage.putText('/pub/testnet.txt', 'via Pubky.testnet')
  t.equal(await pubky.publicStorage.getText(`pubky${user.publicKey.z32()}/pub/testnet.txt`), 'via Pubky.testnet')
})

/** The http-relay `link` contract of the pubkyauth flow: a GET waits for the POST to its path. */
async function startHttpRelay(t: Teardown): Promise<string> {
  const posted = new Map<string, Buffer>()
  const waiting = new Map<string, (body: Buffer) => void>()
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const path = req.url ?? ''
    const deliver = (body: Buffer) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body)
    if (req.method === 'POST') {
      const waiter = waiting.get(path)
      waiting.delete(path)
      if (waiter === undefined) posted.set(path, Buffer.concat(chunks))
      else waiter(Buffer.concat(chunks))
      res.end()
    } else if (posted.has(path)) {
      deliver(posted.get(path)!)
      posted.delete(path)
    } else {
      waiting.set(path, deliver)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise((resolve) => server.close(resolve))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/link/`
}
