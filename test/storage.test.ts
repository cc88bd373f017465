import t from 'tap'
import { TEST_ENGINE } from './helpers/engine.js'
import { FILE_OVERHEAD, fileCost } from '../src/events/writer.js'
import http from 'node:http'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { blake3 } from '@noble/hashes/blake3.js'
import { headOf, newUser, startTestServer } from './helpers/server.js'
import { readSubscribe } from './helpers/sse.js'
import type { Server } from '../src/server.js'
import { HomeserverClient } from 'hearth-homeserver-client'

/** The file API of SPEC §2–§3, through the real server. Listings: storage-list; attacks: storage-paths. */

interface Raw {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

/** A request sent exactly as written: no URL normalisation, any Host header. */
function raw(server: Server, method: string, path: string, headers: Record<string, string> = {}, body?: Uint8Array): Promise<Raw> {
  const { hostname, port } = new URL(server.url)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path, headers, setHost: headers.host === undefined }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

const etagOf = (bytes: Uint8Array) => `"${Buffer.from(blake3(bytes)).toString('base64')}"`

// A minimal PNG as file-type reads it: signature, IHDR, an empty IDAT, IEND (CRCs unchecked).
const PNG = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.from([0, 0, 0, 13]), Buffer.from('IHDR'), Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]), Buffer.alloc(4),
  Buffer.from([0, 0, 0, 0]), Buffer.from('IDAT'), Buffer.alloc(4),
  Buffer.from([0, 0, 0, 0]), Buffer.from('IEND'), Buffer.from([0xae, 0x42, 0x60, 0x82]),
])

/** The newest event, as the public feed shows it. */
async function lastEvent(server: Server) {
  const { events } = await readSubscribe(`${server.url}/subscribe?lastSeq=${(await headOf(server.url)) - 1}&live=false`)
  return events[0]!
}

t.test('PUT answers 201 with an empty body; GET gives the bytes and their headers', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bytes = Buffer.from('hello, hearth\n')
  const put = await alice.request('PUT', '/pub/notes/hello.txt', bytes)
  t.equal(put.status, 201)
  t.equal((await put.arrayBuffer()).byteLength, 0, 'no body')
  const ev = await lastEvent(server)
  t.match(ev, { type: 'PUT', user: alice.user, path: '/pub/notes/hello.txt', size: bytes.length })
  t.same([put.headers.get('hearth-event-id'), put.headers.get('hearth-event-seq')], [ev.id, ev.seq], 'it names the event it appended (SPEC §5)')
  const cross = await fetch(`${server.url}/pub/notes/again.txt`, {
    method: 'PUT', body: 'again', headers: { 'pubky-host': alice.user, cookie: `${alice.user}=${alice.session}`, origin: 'https://app.example' },
  })
  t.match(cross.headers.get('access-control-expose-headers'), /hearth-event-id.*hearth-event-seq/, 'which a page may read')
  const gone = await alice.request('DELETE', '/pub/notes/again.txt')
  t.same([gone.status, gone.headers.get('hearth-event-seq')], [204, String(Number(ev.seq) + 2)], 'and so does a DELETE')

  const res = await fetch(`${server.url}/pub/notes/hello.txt`, { headers: { 'pubky-host': alice.user } })
  t.equal(res.status, 200, 'public files need no session')
  t.same(Buffer.from(await res.arrayBuffer()), bytes)
  t.equal(res.headers.get('content-length'), String(bytes.length))
  t.match(res.headers.get('content-type'), /^text\/plain/)
  t.equal(res.headers.get('etag'), etagOf(bytes), 'ETag is the quoted base64 blake3 of the bytes')
  t.equal(`"${ev.contentHash}"`, etagOf(bytes), "the event's contentHash is the same hash")
  t.equal(res.headers.get('last-modified'), new Date(ev.ts).toUTCString(), 'Last-Modified is the commit time, HTTP-date')
})

t.test('Content-Type: sniffed from the bytes, then the extension, then octet-stream', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const cases: [string, Uint8Array, RegExp][] = [
    ['/pub/t/picture.txt', PNG, /^image\/png$/],
    ['/pub/t/data.json', Buffer.from('{"a":1}'), /^application\/json/],
    ['/pub/t/page.html', Buffer.from('<p>hi</p>'), /^text\/html/],
    ['/pub/t/mystery.zzqq', Buffer.from('plain words'), /^application\/octet-stream$/],
    ['/pub/t/noext', Buffer.from('plain words'), /^application\/octet-stream$/],
    ['/pub/t/empty.json', new Uint8Array(), /^application\/json/],
  ]
  for (const [path, body] of cases) await alice.put(path, Buffer.from(body))
  for (const [path, body, type] of cases) {
    const res = await alice.request('GET', path)
    t.match(res.headers.get('content-type'), type, path)
    t.same(Buffer.from(await res.arrayBuffer()), Buffer.from(body), `${path} bytes`)
  }
  const big = Buffer.concat([PNG, randomBytes(100 * 1024)])
  await alice.put('/pub/t/big.bin', big)
  const res = await alice.request('HEAD', '/pub/t/big.bin')
  t.equal(res.headers.get('content-type'), 'image/png', 'a blob-sized file is sniffed too')
})

t.test('an empty file is a file', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  t.equal((await alice.request('PUT', '/pub/empty')).status, 201)
  const res = await alice.request('GET', '/pub/empty')
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-length'), '0')
  t.equal(res.headers.get('etag'), etagOf(new Uint8Array()))
  t.equal((await res.arrayBuffer()).byteLength, 0)
})

t.test('If-None-Match and If-Modified-Since answer 304', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  await alice.put('/pub/c.txt', 'cache me')
  const first = await alice.request('GET', '/pub/c.txt')
  const etag = first.headers.get('etag')!
  const modified = first.headers.get('last-modified')!
  const get = (headers: Record<string, string>) => fetch(`${server.url}/pub/c.txt`, { headers: { 'pubky-host': alice.user, ...headers } })

  const same = await get({ 'if-none-match': etag })
  t.equal(same.status, 304)
  t.equal(same.headers.get('etag'), etag, '304 repeats the ETag')
  t.equal((await same.arrayBuffer()).byteLength, 0)
  t.equal((await get({ 'if-none-match': `"other", ${etag}` })).status, 304, 'one of a list')
  t.equal((await get({ 'if-none-match': `W/${etag}` })).status, 304, 'weak comparison')
  t.equal((await get({ 'if-none-match': '"other"' })).status, 200)
  t.equal((await get({ 'if-modified-since': modified })).status, 304)
  t.equal((await get({ 'if-modified-since': new Date(Date.parse(modified) + 60_000).toUTCString() })).status, 304)
  t.equal((await get({ 'if-modified-since': new Date(Date.parse(modified) - 1000).toUTCString() })).status, 200)
  t.equal((await get({ 'if-modified-since': 'not a date' })).status, 200)
  const future = new Date(Date.parse(modified) + 60_000).toUTCString()
  t.equal((await get({ 'if-none-match': '"other"', 'if-modified-since': future })).status, 200, 'If-None-Match wins')
  const head = await fetch(`${server.url}/pub/c.txt`, { method: 'HEAD', headers: { 'pubky-host': alice.user, 'if-none-match': etag } })
  t.equal(head.status, 304, 'HEAD too')

  await alice.put('/pub/c.txt', 'changed')
  t.equal((await get({ 'if-none-match': etag })).status, 200, 'a new version has a new ETag')
})

t.test('HEAD: the headers of GET, no body', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bytes = randomBytes(1234)
  await alice.put('/pub/h.bin', bytes)
  const res = await raw(server, 'HEAD', '/pub/h.bin', { 'pubky-host': alice.user })
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], '1234')
  t.equal(res.headers.etag, etagOf(bytes))
  t.ok(res.headers['last-modified'])
  t.ok(res.headers['content-type'])
  t.equal(res.body.length, 0)
  t.equal((await raw(server, 'HEAD', '/pub/missing', { 'pubky-host': alice.user })).status, 404)
})

t.test('DELETE: 204, then the file is gone; 404 when absent', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  await alice.put('/pub/d/x.txt', 'x')
  const del = await alice.request('DELETE', '/pub/d/x.txt')
  t.equal(del.status, 204)
  t.equal((await del.arrayBuffer()).byteLength, 0)
  t.match(await lastEvent(server), { type: 'DEL', path: '/pub/d/x.txt' })
  t.equal((await alice.request('GET', '/pub/d/x.txt')).status, 404)
  const head = await headOf(server.url)
  const again = await alice.request('DELETE', '/pub/d/x.txt')
  t.equal(again.status, 404)
  t.match(again.headers.get('content-type'), /^text\/plain/, 'storage errors are plain text')
  t.equal(await headOf(server.url), head, 'a refused DELETE appends no event')
  t.equal((await alice.request('DELETE', '/pub/d/')).status, 400, 'a directory cannot be deleted')
  t.equal((await alice.request('DELETE', '/pub/never')).status, 404)
})

t.test('a PUT to a path ending in / is 400', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const res = await alice.request('PUT', '/pub/dir/', 'x')
  t.equal(res.status, 400)
  t.match(res.headers.get('content-type'), /^text\/plain/)
  t.equal(await headOf(server.url), 0)
})

t.test('409 when a file would sit where a directory is, or the reverse', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  await alice.put('/pub/a/b/c.txt', 'c')
  const head = await headOf(server.url)
  t.equal((await alice.request('PUT', '/pub/a/b', 'x')).status, 409, 'a file over a directory')
  t.equal((await alice.request('PUT', '/pub/a', 'x')).status, 409, 'a file over an ancestor directory')
  t.equal((await alice.request('PUT', '/pub/a/b/c.txt/d', 'x')).status, 409, 'a directory through a file')
  t.equal((await alice.request('PUT', '/pub/a/b/c.txt/d/e', 'x')).status, 409, 'deeper through a file')
  t.equal(await headOf(server.url), head, 'refused PUTs append nothing')
  t.equal((await alice.request('PUT', '/pub/a/bb', 'x')).status, 201, 'a sibling whose name extends the directory is fine')
  t.equal((await alice.request('PUT', '/pub/a/b.txt', 'x')).status, 201)
  await alice.delete('/pub/a/b/c.txt')
  t.equal((await alice.request('PUT', '/pub/a/b', 'x')).status, 201, 'once the directory is empty, a file may take its place')
  t.equal((await alice.request('PUT', '/priv/a/b/c', 'x')).status, 201, '/priv/ is a separate tree')
})

t.test('only /pub/ and /priv/ are writable: anything else is 403', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  for (const path of ['/other/x', '/pubx/y', '/privy/z', '/x.txt', '/public/a', '/PUB/a']) {
    const res = await alice.request('PUT', path, 'x')
    t.equal(res.status, 403, `PUT ${path}`)
    t.match(res.headers.get('content-type'), /^text\/plain/)
    t.equal((await alice.request('DELETE', path)).status, 403, `DELETE ${path}`)
  }
  const addressed = await fetch(`${server.url}/storage/${alice.user}/other/x`, { method: 'PUT', headers: alice.headers(), body: 'x' })
  t.equal(addressed.status, 403, 'path-addressed too')
  t.equal(await headOf(server.url), 0)
})

t.test('writes need a session for the host user with a write capability', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const reader = await newUser(server, '/pub/:r')
  const noSession = await fetch(`${server.url}/pub/x`, { method: 'PUT', headers: { 'pubky-host': alice.user }, body: 'x' })
  t.equal(noSession.status, 401)
  t.match(noSession.headers.get('content-type'), /^text\/plain/)
  t.equal((await fetch(`${server.url}/pub/x`, { method: 'DELETE', headers: { 'pubky-host': alice.user } })).status, 401)
  const badCookie = await fetch(`${server.url}/pub/x`, { method: 'PUT', headers: { 'pubky-host': alice.user, cookie: `${alice.user}=not-a-session` }, body: 'x' })
  t.equal(badCookie.status, 401, 'an unknown cookie value is no session')
  t.equal((await reader.request('PUT', '/pub/x', 'x')).status, 403, 'read-only capability')
  t.equal(await headOf(server.url), 0)
})

t.test('/priv/: readable only with the owner\'s session', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  const pubOnly = new HomeserverClient(server.url, alice.keypair)
  await pubOnly.signin('/pub/:rw')
  await alice.put('/priv/diary.txt', 'secret')
  await alice.put('/priv/dir/x', 'x')

  t.equal((await alice.request('GET', '/priv/diary.txt')).status, 200, 'the owner reads it')
  t.equal(await (await alice.request('GET', '/priv/dir/')).text(), `pubky://${alice.user}/priv/dir/x`, 'and lists it')
  t.equal((await alice.request('HEAD', '/priv/diary.txt')).status, 200)
  const anon = await fetch(`${server.url}/priv/diary.txt`, { headers: { 'pubky-host': alice.user } })
  t.equal(anon.status, 401, 'no session')
  t.equal((await fetch(`${server.url}/priv/dir/`, { headers: { 'pubky-host': alice.user } })).status, 401, 'listing without a session')
  t.equal((await fetch(`${server.url}/priv/nothing`, { headers: { 'pubky-host': alice.user } })).status, 401, 'absent or not, no session is 401')
  const bobs = { 'pubky-host': alice.user, cookie: `${bob.user}=${bob.session}` }
  t.equal((await fetch(`${server.url}/priv/diary.txt`, { headers: bobs })).status, 401, "only another user's cookie: no session for this user")
  const swapped = { 'pubky-host': alice.user, cookie: `${alice.user}=${bob.session}` }
  t.equal((await fetch(`${server.url}/priv/diary.txt`, { headers: swapped })).status, 403, "another user's session")
  t.equal((await fetch(`${server.url}/priv/dir/`, { headers: swapped })).status, 403)
  t.equal((await pubOnly.request('GET', '/priv/diary.txt')).status, 403, 'a session without a read capability for /priv/')
  t.equal((await fetch(`${server.url}/storage/${alice.user}/priv/diary.txt`)).status, 401, 'path-addressed too')
  t.equal((await fetch(`${server.url}/storage/${alice.user}/priv/diary.txt`, { headers: { cookie: `${alice.user}=${alice.session}` } })).status, 200)
})

t.test('the user comes from pubky-host, a bare-key Host, ?pubky-host= or the /storage/ path', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  await alice.put('/pub/who.txt', 'alice')
  await bob.put('/pub/who.txt', 'bob')
  const port = new URL(server.url).port

  const byHeader = await raw(server, 'GET', '/pub/who.txt', { 'pubky-host': alice.user })
  t.equal(byHeader.body.toString(), 'alice')
  t.equal((await raw(server, 'GET', '/pub/who.txt', { host: alice.user })).body.toString(), 'alice', 'Host: <z32>')
  t.equal((await raw(server, 'GET', '/pub/who.txt', { host: `${bob.user}:${port}` })).body.toString(), 'bob', 'Host: <z32>:port')
  t.equal((await raw(server, 'GET', `/pub/who.txt?pubky-host=${bob.user}`)).body.toString(), 'bob', '?pubky-host=')
  t.equal((await raw(server, 'GET', `/storage/${bob.user}/pub/who.txt`)).body.toString(), 'bob', '/storage/<z32>/...')

  t.equal((await raw(server, 'GET', `/pub/who.txt?pubky-host=${bob.user}`, { 'pubky-host': alice.user })).body.toString(), 'alice', 'header before query')
  t.equal((await raw(server, 'GET', '/pub/who.txt', { 'pubky-host': alice.user, host: bob.user })).body.toString(), 'alice', 'header before Host')
  t.equal((await raw(server, 'GET', `/pub/who.txt?pubky-host=${alice.user}`, { host: bob.user })).body.toString(), 'bob', 'Host before query')

  const none = await raw(server, 'GET', '/pub/who.txt')
  t.equal(none.status, 400, 'no user named')
  t.match(none.headers['content-type'], /^text\/plain/)
  t.equal((await raw(server, 'GET', '/pub/who.txt', { 'pubky-host': 'not-a-key' })).status, 400)
  t.equal((await raw(server, 'GET', '/pub/who.txt', { 'pubky-host': alice.user.toUpperCase() })).status, 400, 'z32 is lower case')
  t.equal((await raw(server, 'GET', '/pub/who.txt', { 'pubky-host': alice.user.slice(0, 51) })).status, 400)
  t.equal((await raw(server, 'GET', '/pub/who.txt?pubky-host=abc')).status, 400)
  t.equal((await raw(server, 'GET', '/storage/abc/pub/who.txt')).status, 400)
  t.match((await raw(server, 'GET', '/storage/abc/pub/who.txt')).body.toString(), /Invalid public key/)
})

t.test('/storage/<z32>/pub/... is the same resource as /pub/... with pubky-host', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const at = (p: string) => `${server.url}/storage/${alice.user}${p}`
  const cookie = { cookie: `${alice.user}=${alice.session}` }

  t.equal((await fetch(at('/pub/s/one.txt'), { method: 'PUT', headers: cookie, body: 'one' })).status, 201, 'PUT path-addressed')
  t.equal(await (await alice.request('GET', '/pub/s/one.txt')).text(), 'one', 'read by header')
  await alice.put('/pub/s/two.txt', 'two')
  const two = await fetch(at('/pub/s/two.txt'))
  t.equal(await two.text(), 'two', 'read path-addressed')
  t.equal(two.headers.get('etag'), etagOf(Buffer.from('two')))
  t.equal((await fetch(at('/pub/s/two.txt'), { method: 'HEAD' })).headers.get('content-length'), '3')
  t.equal(await (await fetch(at('/pub/s/'))).text(), [`pubky://${alice.user}/pub/s/one.txt`, `pubky://${alice.user}/pub/s/two.txt`].join('\n'))
  t.equal((await fetch(at('/pub/s/one.txt'), { method: 'DELETE', headers: cookie })).status, 204)
  t.equal((await alice.request('GET', '/pub/s/one.txt')).status, 404)
  t.match(await lastEvent(server), { type: 'DEL', user: alice.user, path: '/pub/s/one.txt' }, 'the event names the path, not the /storage/ URL')
  t.equal((await fetch(`${server.url}/storage/${alice.user}`)).status, 400, 'a key with no path')
})

t.test('GET /info names path-addressed storage', async (t) => {
  const server = await startTestServer(t)
  const res = await fetch(`${server.url}/info`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^application\/json/)
  const info = (await res.json()) as { features: string[] }
  t.same(info.features, ['path-addressed-storage'])
})

t.test('files past 64 KiB live in blob files and round-trip; deleting removes the blob', { skip: TEST_ENGINE !== 'leveldb' && 'blob files in the data folder are the LevelDB engine\'s (the store conformance suite covers PostgreSQL blobs)' }, async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const dir = join(server.ctx.config.dataDir, 'blobs')
  // A replaced blob is unlinked right after its commit is answered: wait for the writer.
  const blobFiles = async () => (await server.ctx.writer.idle(), readdirSync(dir))
  const big = randomBytes(300 * 1024 + 7)
  await alice.put('/pub/big.bin', big)
  t.equal((await blobFiles()).length, 1, 'one blob file')
  const res = await alice.request('GET', '/pub/big.bin')
  t.equal(res.headers.get('content-length'), String(big.length))
  t.equal(res.headers.get('etag'), etagOf(big))
  t.ok(Buffer.from(await res.arrayBuffer()).equals(big), 'same bytes')

  const bigger = randomBytes(200 * 1024)
  await alice.put('/pub/big.bin', bigger)
  t.equal((await blobFiles()).length, 1, 'overwriting replaces the old blob')
  t.ok(Buffer.from(await alice.get('/pub/big.bin')).equals(bigger))
  await alice.put('/pub/big.bin', 'small now')
  t.equal((await blobFiles()).length, 0, 'an inline overwrite frees the blob')
  t.equal(Buffer.from(await alice.get('/pub/big.bin')).toString(), 'small now')
  await alice.put('/pub/big.bin', big)
  t.ok(Buffer.from(await alice.get('/pub/big.bin')).equals(big), 'inline back to blob')
  await alice.delete('/pub/big.bin')
  t.equal((await blobFiles()).length, 0, 'deleting frees the blob')
  const edge = randomBytes(64 * 1024)
  await alice.put('/pub/edge.bin', edge)
  t.ok(Buffer.from(await alice.get('/pub/edge.bin')).equals(edge), 'exactly 64 KiB')
})

t.test('USER_QUOTA: 507 past it; a file costs content + path + overhead; DELETE gives space back', async (t) => {
  // room for /pub/a at 600 bytes and /pub/b at 400, to the byte
  const quota = fileCost('/pub/a', 600) + fileCost('/pub/b', 400)
  const server = await startTestServer(t, { USER_QUOTA: String(quota) })
  const alice = await newUser(server)
  const bob = await newUser(server)
  const usage = async () => (await server.ctx.users.get(alice.user))!.usage
  await alice.put('/pub/a', Buffer.alloc(600))
  t.equal(await usage(), 600 + '/pub/a'.length + FILE_OVERHEAD)
  const over = await alice.request('PUT', '/pub/b', Buffer.alloc(401))
  t.equal(over.status, 507)
  t.match(over.headers.get('content-type'), /^text\/plain/)
  t.equal((await alice.request('GET', '/pub/b')).status, 404, 'the refused file does not exist')
  t.equal(await usage(), fileCost('/pub/a', 600), 'a refused PUT uses nothing')
  t.equal((await alice.request('PUT', '/pub/b', Buffer.alloc(400))).status, 201, 'exactly at the quota is allowed')
  t.equal(await usage(), quota)
  t.equal((await alice.request('PUT', '/pub/a', Buffer.alloc(601))).status, 507, 'growing a file past the quota')
  t.equal((await alice.request('PUT', '/pub/a', Buffer.alloc(100))).status, 201, 'shrinking it is fine')
  t.equal(await usage(), fileCost('/pub/a', 100) + fileCost('/pub/b', 400))
  await alice.delete('/pub/b')
  t.equal(await usage(), fileCost('/pub/a', 100), 'usage goes down after DELETE')
  t.equal((await alice.request('PUT', '/pub/c', Buffer.alloc(900))).status, 201, 'and the space can be used again')
  t.equal((await bob.request('PUT', '/pub/a', Buffer.alloc(1000))).status, 201, 'the quota is per user')
  t.equal((await alice.request('PUT', '/priv/p', Buffer.alloc(1))).status, 507, '/priv/ counts too')
})

t.test('USER_QUOTA: at the quota, empty files with long paths are refused too', async (t) => {
  const server = await startTestServer(t, { USER_QUOTA: '10000' })
  const alice = await newUser(server)
  const long = (i: number) => `/pub/${'x'.repeat(200)}/${'y'.repeat(200)}/${i}`
  let stored = 0
  for (let i = 0; i < 200; i++) {
    const status = (await alice.request('PUT', long(i), new Uint8Array())).status
    if (status === 507) break
    t.equal(status, 201)
    stored++
  }
  t.equal(stored, Math.floor(10000 / fileCost(long(0), 0)), 'empty files stop at the quota their paths and overhead fill')
  t.ok((await server.ctx.users.get(alice.user))!.usage <= 10000, 'usage never passes the quota')
})

t.test('CORS: any origin may read and write with its cookie; preflights are answered', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  await alice.put('/pub/cors.txt', 'x')
  const origin = 'https://app.example'
  const pre = await fetch(`${server.url}/pub/cors.txt`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'pubky-host, content-type' },
  })
  t.ok(pre.status === 204 || pre.status === 200, 'preflight answered')
  t.equal(pre.headers.get('access-control-allow-origin'), origin)
  t.equal(pre.headers.get('access-control-allow-credentials'), 'true')
  t.match(pre.headers.get('access-control-allow-methods'), /PUT/)
  t.match(pre.headers.get('access-control-allow-headers') ?? '', /pubky-host/i)
  const get = await fetch(`${server.url}/pub/cors.txt`, { headers: { origin, 'pubky-host': alice.user } })
  t.equal(get.headers.get('access-control-allow-origin'), origin)
  t.match(get.headers.get('access-control-expose-headers'), /etag/i)
})

t.test('reads racing overwrites get one whole version: bytes that match their ETag', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  for (const [what, size] of [['blob', 150 * 1024], ['inline', 2000]] as const) {
    const path = `/pub/race-${what}`
    await alice.put(path, randomBytes(size))
    let writing = true
    const writer = (async () => {
      for (let i = 0; i < 60; i++) await alice.put(path, randomBytes(size + (i % 7)))
      writing = false
    })()
    const outcomes = new Map<string, number>()
    const readers = Array.from({ length: 6 }, async () => {
      while (writing) {
        const res = await fetch(`${server.url}${path}`, { headers: { 'pubky-host': alice.user } })
        const bytes = Buffer.from(await res.arrayBuffer())
        const verdict = res.status !== 200 ? `status ${res.status}` : res.headers.get('etag') !== etagOf(bytes) ? 'bytes of another version' : Number(res.headers.get('content-length')) !== bytes.length ? 'wrong length' : 'ok'
        outcomes.set(verdict, (outcomes.get(verdict) ?? 0) + 1)
      }
    })
    await Promise.all([writer, ...readers])
    t.same([...outcomes.keys()], ['ok'], `${what}: every read is whole (${JSON.stringify(Object.fromEntries(outcomes))})`)
  }
})
