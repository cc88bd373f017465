import t from 'tap'
import http from 'node:http'
import { newUser, startTestServer } from './helpers/server.js'
import type { Server } from '../src/server.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { readSubscribe } from './helpers/sse.js'
import { PathMaker } from './helpers/long-paths.js'
import { MAX_PATH_BYTES, MAX_SEGMENTS } from '../src/paths.js'

/**
 * Hostile paths and borrowed credentials (SPEC §2, §4). Requests go out through node:http
 * with the path exactly as written: fetch would resolve `..` and `%2e%2e` before sending.
 */

function raw(server: Server, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(server.url)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode!, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

const enc = (path: string) => path.split('/').map(encodeURIComponent).join('/')

/** A listing's lines over every page, each requested with the last line of the one before as cursor. */
async function listPages(user: HomeserverClient, dir: string, limit: number, flags = ''): Promise<string[]> {
  const lines: string[] = []
  for (;;) {
    const cursor = lines.length === 0 ? '' : `&cursor=${encodeURIComponent(lines.at(-1)!)}`
    const res = await user.request('GET', `${enc(dir)}?limit=${limit}${flags === '' ? '' : '&' + flags}${cursor}`)
    const text = await res.text()
    if (res.status !== 200) throw new Error(`${res.status}: ${text}`)
    const page = text === '' ? [] : text.split('\n')
    lines.push(...page)
    if (page.length < limit) return lines
    if (lines.length > 10_000) throw new Error('paging does not end')
  }
}

/** Paths of every file the user's events say exists now, read as the user may: with their session. */
async function storedPaths(server: Server, user: HomeserverClient): Promise<string[]> {
  const live = new Set<string>()
  const { events } = await readSubscribe(`${server.url}/subscribe?filter=${user.user}/*&lastSeq=0&live=false`, user.headers())
  for (const ev of events) {
    if (ev.type === 'PUT') live.add(ev.path)
    else live.delete(ev.path)
  }
  return [...live].sort()
}

t.test('. and .. are resolved, //s folded, before anything else looks at the path', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const h = alice.headers()
  const cases: [string, string][] = [
    ['/pub/a/../dots.txt', '/pub/dots.txt'],
    ['/pub/a/%2e%2e/encoded.txt', '/pub/encoded.txt'],
    ['/pub/a/%2E%2E/upper.txt', '/pub/upper.txt'],
    ['/pub/a/b/.%2e/../mixed.txt', '/pub/mixed.txt'],
    ['/pub/./x/./single.txt', '/pub/x/single.txt'],
    ['/pub//y///slashes.txt', '/pub/y/slashes.txt'],
    ['/pub/a%2f..%2fslash.txt', '/pub/slash.txt'],
  ]
  for (const [sent, stored] of cases) {
    t.equal((await raw(server, 'PUT', sent, h, sent)).status, 201, `PUT ${sent}`)
    t.equal((await alice.request('GET', stored).then((r) => r.text())), sent, `${sent} is stored as ${stored}`)
    t.equal((await raw(server, 'GET', sent, h)).body, sent, `GET ${sent} reads it back`)
  }
  // Only writes are routed for paths outside /pub/ and /priv/ (to answer 403), so a leading
  // '//' is normalised on PUT; a GET there is an unknown route.
  t.equal((await raw(server, 'PUT', '//pub/leading.txt', h, 'lead')).status, 201)
  t.equal(await (await alice.request('GET', '/pub/leading.txt')).text(), 'lead')
  const expected = [...cases.map(([, p]) => p), '/pub/leading.txt'].sort()
  t.same(await storedPaths(server, alice), expected, 'events carry the normalised paths')
  t.equal((await raw(server, 'DELETE', '/pub/q/../dots.txt', h)).status, 204, 'DELETE normalises too')
  t.equal((await raw(server, 'PUT', '/pub/a/.', h, 'x')).status, 400, 'a trailing . names a directory')
  t.equal((await raw(server, 'PUT', '/pub/a/..', h, 'x')).status, 400, 'so does a trailing ..')
})

t.test('.. above the root is 400', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const h = alice.headers()
  for (const path of ['/pub/../../x', '/pub/%2e%2e/%2e%2e/x', '/..', '/../pub/x', '/pub/a/../../../x', '/%2e%2e/pub/x']) {
    const put = await raw(server, 'PUT', path, h, 'x')
    t.equal(put.status, 400, `PUT ${path}`)
    t.match(put.body, /above the root/)
  }
  t.equal((await raw(server, 'GET', '/pub/../../x', h)).status, 400, 'GET too')
  t.equal((await raw(server, 'GET', `/storage/${alice.user}/pub/../../x`)).status, 400, 'path-addressed')
  t.equal((await raw(server, 'GET', `/storage/${alice.user}/../${alice.user}/pub/x`)).status, 400, 'no climbing out of the key')
  t.equal(server.ctx.events.head, 0)
})

t.test('.. cannot reach /priv/ or another root through /pub/', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const pubOnly = new HomeserverClient(server.url, alice.keypair)
  await pubOnly.signin('/pub/:rw')
  await alice.put('/priv/secret.txt', 'secret')
  for (const path of ['/pub/../priv/secret.txt', '/pub/%2e%2e/priv/secret.txt', '/pub/x%2f..%2f..%2fpriv/secret.txt']) {
    const anon = await raw(server, 'GET', path, { 'pubky-host': alice.user })
    t.equal(anon.status, 401, `GET ${path} without a session`)
    t.not(anon.body, 'secret')
    t.equal((await raw(server, 'GET', path, pubOnly.headers())).status, 403, `GET ${path} with a /pub/ session`)
    t.equal((await raw(server, 'PUT', path, pubOnly.headers(), 'overwritten')).status, 403, `PUT ${path} with a /pub/ session`)
  }
  t.equal((await raw(server, 'PUT', '/pub/../etc/passwd', alice.headers(), 'x')).status, 403, 'out of the roots')
  t.equal((await raw(server, 'GET', '/pub/%2e%2e/priv/', { 'pubky-host': alice.user })).status, 401, 'listing too')
  t.equal(await (await alice.request('GET', '/priv/secret.txt')).text(), 'secret', 'unchanged')
})

t.test('control characters and bad percent-encoding are 400', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const h = alice.headers()
  // C1 (U+0080–U+009F) too: filters refuse it, so a file holding one could never be followed
  const c1 = ['/pub/a%C2%85b', '/pub/a%C2%80b', '/pub/a%c2%9fb', '/pub/%C2%9B/x']
  for (const path of ['/pub/a%00b', '/pub/a%0ab', '/pub/a%0db', '/pub/a%09b', '/pub/a%1fb', '/pub/a%7fb', '/pub/%00/x', '/pub/a%zzb', '/pub/a%', '/pub/%c3', ...c1]) {
    t.equal((await raw(server, 'PUT', path, h, 'x')).status, 400, `PUT ${path}`)
    t.equal((await raw(server, 'GET', path, h)).status, 400, `GET ${path}`)
  }
  t.equal((await raw(server, 'GET', '/pub/d%00/', h)).status, 400, 'in a listed directory')
  const refused = await raw(server, 'PUT', '/pub/a%C2%85b', h, 'x')
  t.equal(refused.body, 'Invalid path: control characters', 'a plain-text 400 that says why')
  t.equal(server.ctx.events.head, 0, 'nothing was stored')
  t.equal((await raw(server, 'PUT', '/pub/caf%C3%A9%20%3F%23.txt', h, 'ok')).status, 201, 'other encoded characters are fine')
  t.equal((await raw(server, 'PUT', '/pub/%C2%A0nbsp', h, 'ok')).status, 201, 'U+00A0, just past C1, is fine')
  t.equal(await (await alice.request('GET', '/pub/caf%C3%A9%20%3F%23.txt')).text(), 'ok')
  t.same(await storedPaths(server, alice), ['/pub/café ?#.txt', '/pub/\u00a0nbsp'])
})

t.test('a path has at most 64 segments, counted after normalising', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const h = alice.headers()
  const deep = (n: number) => '/pub' + '/s'.repeat(n - 1)
  t.equal((await raw(server, 'PUT', deep(64), h, 'x')).status, 201, '64 segments')
  t.equal((await alice.request('GET', deep(64))).status, 200)
  const over = await raw(server, 'PUT', deep(65).replace('/pub/', '/pub/t/'), h, 'x')
  t.same(over, { status: 400, body: 'Invalid path: more than 64 segments' }, '65 segments')
  t.equal((await raw(server, 'PUT', '/pub' + '/a'.repeat(2000), h, 'x')).status, 400, '2,000 one-byte segments')
  t.equal((await raw(server, 'GET', deep(65), h)).status, 400, 'GET too')
  t.equal((await raw(server, 'PUT', deep(64).replace('/pub/', '/pub/x/y/../../'), h, 'y')).status, 201, '.. brings it back within the bound')
  t.equal((await raw(server, 'GET', deep(64) + '/', { 'pubky-host': alice.user })).status, 200, 'a listing of the deepest folder')
  t.same(await storedPaths(server, alice), [deep(64)])
})

t.test('a segment is at most 255 bytes and a path at most 4096', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const h = alice.headers()
  t.equal((await raw(server, 'PUT', `/pub/${'s'.repeat(255)}`, h, 'x')).status, 201, '255-byte segment')
  t.equal((await raw(server, 'PUT', `/pub/${'s'.repeat(256)}`, h, 'x')).status, 400, '256-byte segment')
  t.equal((await raw(server, 'PUT', `/pub/${encodeURIComponent('é'.repeat(127))}`, h, 'x')).status, 201, '254 bytes in 127 characters')
  t.equal((await raw(server, 'PUT', `/pub/${encodeURIComponent('é'.repeat(128))}`, h, 'x')).status, 400, '256 bytes in 128 characters')
  t.equal((await raw(server, 'GET', `/pub/${'s'.repeat(256)}`, h)).status, 400, 'GET too')

  // '/pub' + 16 × ('/' + 250 bytes) + '/' + tail: 4 + 16 × 251 + 1 + tail = 4096 at tail 75
  const long = (tail: number) => `/pub${`/${'p'.repeat(250)}`.repeat(16)}/${'t'.repeat(tail)}`
  t.equal(Buffer.byteLength(long(75)), 4096)
  t.equal((await raw(server, 'PUT', long(75), h, 'x')).status, 201, 'a 4096-byte path')
  t.equal((await alice.request('GET', long(75))).status, 200)
  t.equal((await raw(server, 'PUT', long(76), h, 'x')).status, 400, 'a 4097-byte path')
  t.equal((await raw(server, 'GET', long(76), h)).status, 400)
  t.equal((await raw(server, 'PUT', long(75).replace('/pub/', '/pub/x/../'), h, 'y')).status, 201, 'the limit applies after normalising')
})

t.test('the longest allowed paths, of characters that do not compress, are stored, listed and deleted on every engine', async (t) => {
  const server = await startTestServer(t)
  const [alice, bob] = [await newUser(server), await newUser(server)]
  const make = new PathMaker(0x1000)
  const longest = [make.path('/pub', MAX_PATH_BYTES), make.path('/pub', MAX_PATH_BYTES, MAX_SEGMENTS - 1)]
  t.same(longest.map((p) => p.split('/').length - 1), [17, MAX_SEGMENTS], '17 segments of 255 bytes; 64 of 64')
  // a folder 3.6 KB deep, of letters alone so that a listing's URL with a cursor stays short;
  // its files' names hold characters of 2 to 4 bytes, and their paths run to the limit
  const folder = new PathMaker(0x1001, 0).path('/pub/deep', 3600)
  const inFolder = Array.from({ length: 40 }, (_, i) => make.path(folder, MAX_PATH_BYTES - (i % 4) * 60))
  // at once, with another user's writes: each lands in whatever commit group it meets
  const [puts, others] = await Promise.all([
    Promise.all([...longest, ...inFolder].map((p, i) => raw(server, 'PUT', enc(p), alice.headers(), `long ${i}`))),
    Promise.all(Array.from({ length: 40 }, (_, i) => raw(server, 'PUT', `/pub/short/${i}`, bob.headers(), 'x'))),
  ])
  t.same([...puts, ...others].map((r) => r.status), [...puts, ...others].map(() => 201), 'every PUT is stored')
  t.equal(await (await alice.request('GET', enc(longest[1]!))).text(), 'long 1', 'and reads back')
  t.equal((await raw(server, 'GET', enc(inFolder[7]!), alice.headers())).body, 'long 9', 'one in the deep folder too')

  const u = `pubky://${alice.user}`
  const sorted = inFolder.map((p) => u + p).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  t.same(await listPages(alice, folder + '/', 7), sorted, 'listed in byte order, in pages of 7 with the last line as cursor')
  t.same(await listPages(alice, folder + '/', 7, 'reverse'), [...sorted].reverse(), 'and in reverse')
  t.same(await listPages(alice, '/pub/deep/', 1000, 'shallow'), [`${u}${folder.slice(0, folder.indexOf('/', 10) + 1)}`], 'a shallow listing above it')

  t.equal((await raw(server, 'DELETE', enc(longest[0]!), alice.headers())).status, 204, 'DELETE')
  t.equal((await raw(server, 'GET', enc(longest[0]!), alice.headers())).status, 404, 'deleted')
  t.equal((await raw(server, 'DELETE', enc(inFolder[0]!), alice.headers())).status, 204, 'DELETE in the deep folder')
  t.same(await listPages(alice, folder + '/', 1000), sorted.filter((l) => l !== u + inFolder[0]), 'listed without it')
  t.same(await storedPaths(server, alice), [longest[1]!, ...inFolder.slice(1)].sort(), 'the events name every long path')
})

t.test('capabilities: a directory scope covers what is below it, a file scope one file', async (t) => {
  const server = await startTestServer(t)
  const owner = await newUser(server)
  const scoped = new HomeserverClient(server.url, owner.keypair)
  await scoped.signin('/pub/a/:rw,/pub/x.txt:rw')
  const h = scoped.headers()
  const expect: [string, number][] = [
    ['/pub/a/file', 201],
    ['/pub/a/deep/er/file', 201],
    ['/pub/x.txt', 201],
    ['/pub/ab', 403],
    ['/pub/ab/file', 403],
    ['/pub/a', 403],
    ['/pub/x.txt2', 403],
    ['/pub/x.txt.bak', 403],
    ['/pub/b/file', 403],
    ['/priv/a/file', 403],
    ['/pub/a/../ab', 403],
    ['/pub/a/%2e%2e/b/file', 403],
    ['/pub/a/%2e%2e/a/back', 201],
  ]
  for (const [path, status] of expect) t.equal((await raw(server, 'PUT', path, h, 'x')).status, status, `PUT ${path}`)
  t.equal((await raw(server, 'DELETE', '/pub/ab', owner.headers())).status, 404, 'the owner sees nothing was written there')
  t.same(await storedPaths(server, owner), ['/pub/a/back', '/pub/a/deep/er/file', '/pub/a/file', '/pub/x.txt'].sort())
  t.equal((await raw(server, 'DELETE', '/pub/a/file', h)).status, 204)
  await owner.put('/pub/b/file', 'x')
  t.equal((await raw(server, 'DELETE', '/pub/b/file', h)).status, 403, 'DELETE needs the capability too')
})

t.test("another user's credentials: 401 without a cookie for this user, 403 with someone else's session", async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  await bob.put('/pub/b.txt', 'bob')
  await bob.put('/priv/b.txt', 'bob')
  const aliceOnly = { cookie: `${alice.user}=${alice.session}` }
  const aliceAsBob = { cookie: `${bob.user}=${alice.session}` }
  const both = { cookie: `${alice.user}=${alice.session}; ${bob.user}=${alice.session}` }
  for (const [route, h] of [
    ['/pub/b.txt', { 'pubky-host': bob.user }],
    [`/storage/${bob.user}/pub/b.txt`, {}],
  ] as const) {
    t.equal((await raw(server, 'PUT', route, { ...h, ...aliceOnly }, 'x')).status, 401, `${route}: only alice's cookie`)
    t.equal((await raw(server, 'PUT', route, { ...h, ...aliceAsBob }, 'x')).status, 403, `${route}: a cookie named after bob holding alice's secret`)
    t.equal((await raw(server, 'PUT', route, { ...h, ...both }, 'x')).status, 403, `${route}: both`)
    t.equal((await raw(server, 'DELETE', route, { ...h, ...aliceAsBob })).status, 403)
  }
  t.equal((await raw(server, 'GET', '/priv/b.txt', { 'pubky-host': bob.user, ...aliceOnly })).status, 401)
  t.equal((await raw(server, 'GET', '/priv/b.txt', { 'pubky-host': bob.user, ...aliceAsBob })).status, 403)
  t.equal((await raw(server, 'GET', '/session', { 'pubky-host': bob.user, ...aliceAsBob })).status, 404, "GET /session does not show alice's session as bob's")
  t.equal(await (await bob.request('GET', '/pub/b.txt')).text(), 'bob', 'nothing changed')
  const ownCookies = { cookie: `${alice.user}=${alice.session}; ${bob.user}=${bob.session}` }
  t.equal((await raw(server, 'PUT', '/pub/b2.txt', { 'pubky-host': bob.user, ...ownCookies }, 'x')).status, 201, 'with every cookie sent, the one named after the host user is used')
  t.equal((await raw(server, 'PUT', '/pub/a2.txt', { 'pubky-host': alice.user, ...ownCookies }, 'x')).status, 201)
})

t.test("a token signed by alice does not open bob's storage", async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  // Alice signs in while addressing bob's host: the session is still hers, named after her.
  const res = await fetch(`${server.url}/session?pubky-host=${bob.user}`, {
    method: 'POST',
    headers: { 'pubky-host': bob.user },
    body: Buffer.from((await import('../src/auth/token.js')).signAuthToken(alice.keypair, '/:rw')),
  })
  t.equal(res.status, 200)
  const cookies = res.headers.getSetCookie()
  t.equal(cookies.length, 1)
  t.ok(cookies[0]!.startsWith(`${alice.user}=`), 'the cookie is named after the signer')
  const secret = cookies[0]!.slice(alice.user.length + 1).split(';')[0]!
  t.equal((await raw(server, 'PUT', '/pub/x', { 'pubky-host': bob.user, cookie: `${alice.user}=${secret}` }, 'x')).status, 401)
  t.equal((await raw(server, 'PUT', '/pub/x', { 'pubky-host': bob.user, cookie: `${bob.user}=${secret}` }, 'x')).status, 403)
  t.equal((await raw(server, 'PUT', '/pub/x', { 'pubky-host': alice.user, cookie: `${alice.user}=${secret}` }, 'x')).status, 201)
  t.same(await storedPaths(server, bob), [])
})
