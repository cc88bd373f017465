import t from 'tap'
import { newUser, startTestServer } from './helpers/server.js'
import type { HomeserverClient } from 'hearth-homeserver-client'

/** Directory listings (SPEC §3): format, byte order, limit, cursor, reverse, shallow, paging. */

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))
const enc = (path: string) => path.split('/').map(encodeURIComponent).join('/')

async function putAll(client: HomeserverClient, paths: string[], concurrency = 32): Promise<void> {
  const queue = [...paths]
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let p = queue.shift(); p !== undefined; p = queue.shift()) await client.put(enc(p), 'x')
  }))
}

/** One listing request; its lines, or the status when it is not 200. */
async function list(client: HomeserverClient, dir: string, query = ''): Promise<string[]> {
  const res = await client.request('GET', enc(dir) + (query ? `?${query}` : ''))
  const text = await res.text()
  if (res.status !== 200) throw new Error(`${res.status}: ${text}`)
  return text === '' ? [] : text.split('\n')
}

/** Every page of a listing, each requested with the last line of the one before as cursor. */
async function pages(client: HomeserverClient, dir: string, limit: number, extra = ''): Promise<string[][]> {
  const out: string[][] = []
  let cursor: string | undefined
  for (;;) {
    const q = [`limit=${limit}`, extra, cursor === undefined ? '' : `cursor=${encodeURIComponent(cursor)}`].filter(Boolean).join('&')
    const page = await list(client, dir, q)
    if (page.length === 0) return out
    if (page.length > limit) throw new Error(`a page of ${page.length} lines, over its limit of ${limit}`)
    if (out.length > 1000) throw new Error('paging does not end')
    out.push(page)
    cursor = page[page.length - 1]
  }
}

t.test('a deep listing: every file below the directory, one URL a line, in byte order', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  await putAll(alice, ['/pub/d/b/c', '/pub/d/a', '/pub/d/b/a/z', '/pub/d-x/y', '/pub/dx', '/pub/e', '/priv/d/secret'])
  await bob.put('/pub/d/bob', 'x')
  const res = await alice.request('GET', '/pub/d/')
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain/)
  const u = `pubky://${alice.user}`
  t.equal(await res.text(), [`${u}/pub/d/a`, `${u}/pub/d/b/a/z`, `${u}/pub/d/b/c`].join('\n'), 'joined by \\n, no trailing newline')
  t.same(await list(alice, '/pub/'), [`${u}/pub/d-x/y`, `${u}/pub/d/a`, `${u}/pub/d/b/a/z`, `${u}/pub/d/b/c`, `${u}/pub/dx`, `${u}/pub/e`])
  t.same(await list(alice, '/pub/d/b/a/'), [`${u}/pub/d/b/a/z`])
  t.same(await list(alice, '/pub/nothing/'), [], 'an empty directory lists nothing')
  t.same(await list(bob, '/pub/d/'), [`pubky://${bob.user}/pub/d/bob`], "another user's files stay out")
  const addressed = await fetch(`${server.url}/storage/${alice.user}/pub/d/b/`)
  t.equal(await addressed.text(), [`${u}/pub/d/b/a/z`, `${u}/pub/d/b/c`].join('\n'), 'path-addressed')
})

t.test('byte order, not UTF-16 order, in deep and shallow listings and their cursors', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  // '-' < '/' < '0' < 'Z' < 'z' < 'é' < U+FFFF < '😀' by UTF-8 bytes; UTF-16 puts '😀' before U+FFFF.
  const names = ['z', 'é', 'Z', '0', 'a-b', 'a/x', 'a/y/z', 'a0', '\uffff', '😀', '😀/in', 'b']
  await putAll(alice, names.filter((n) => n !== '😀').map((n) => `/pub/o/${n}`))
  await putAll(alice, ['/pub/p/😀', '/pub/p/\uffff', '/pub/p/é'])
  const u = `pubky://${alice.user}/pub/o/`
  const deep = names.filter((n) => n !== '😀').sort(byBytes).map((n) => u + n)
  t.same(await list(alice, '/pub/o/'), deep)
  t.same(await list(alice, '/pub/o/', 'reverse=true'), [...deep].reverse())
  const shallow = ['z', 'é', 'Z', '0', 'a-b', 'a/', 'a0', '\uffff', '😀/', 'b'].sort(byBytes).map((n) => u + n)
  t.same(await list(alice, '/pub/o/', 'shallow=true'), shallow)
  t.same(await list(alice, '/pub/o/', 'shallow=true&reverse=true'), [...shallow].reverse())
  for (const [what, extra, full] of [['deep', '', deep], ['shallow', 'shallow=true', shallow]] as const) {
    t.same((await pages(alice, '/pub/o/', 1, extra)).flat(), full, `${what}, one a page`)
    t.same((await pages(alice, '/pub/o/', 1, `${extra}&reverse=true`)).flat(), [...full].reverse(), `${what} reversed, one a page`)
  }
  const p = `pubky://${alice.user}/pub/p/`
  const cursor = encodeURIComponent(`${p}\uffff`)
  t.same(await list(alice, '/pub/p/', `cursor=${cursor}`), [`${p}😀`], 'after U+FFFF comes 😀')
  t.same(await list(alice, '/pub/p/', `shallow=true&cursor=${cursor}`), [`${p}😀`], 'shallow too')
  t.same(await list(alice, '/pub/p/', `reverse=true&cursor=${cursor}`), [`${p}é`])
  t.same(await list(alice, '/pub/p/', `shallow=true&reverse=true&cursor=${cursor}`), [`${p}é`])
})

t.test('limit: default 100, at most 1000', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const paths = Array.from({ length: 1001 }, (_, i) => `/pub/m/${String(i).padStart(4, '0')}`)
  await putAll(alice, paths)
  const all = paths.map((p) => `pubky://${alice.user}${p}`)
  t.same(await list(alice, '/pub/m/'), all.slice(0, 100), 'default 100')
  t.same(await list(alice, '/pub/m/', 'limit=1000'), all.slice(0, 1000))
  t.same(await list(alice, '/pub/m/', 'limit=5000'), all.slice(0, 1000), 'capped at 1000')
  t.same(await list(alice, '/pub/m/', 'limit=3'), all.slice(0, 3))
  t.same(await list(alice, '/pub/m/', 'limit=3&reverse=true'), all.slice(-3).reverse())
  t.same(await list(alice, '/pub/m/', 'limit=5000&shallow=true'), all.slice(0, 1000), 'shallow is capped too')
  t.same(await list(alice, '/pub/', 'shallow=true'), [`pubky://${alice.user}/pub/m/`], 'a thousand files, one directory')
  for (const bad of ['limit=abc', 'limit=-1', 'limit=1.5', 'limit=']) {
    const res = await alice.request('GET', `/pub/m/?${bad}`)
    t.equal(res.status, 400, bad)
    t.match(res.headers.get('content-type'), /^text\/plain/)
  }
})

t.test('cursor: exclusive, as pubky://<z32>/path or <z32>/path', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  await putAll(alice, ['/pub/c/1', '/pub/c/2', '/pub/c/3', '/pub/c/4/x', '/pub/c/5'])
  const u = `pubky://${alice.user}/pub/c/`
  const forms = [`pubky://${alice.user}/pub/c/2`, `${alice.user}/pub/c/2`]
  for (const cursor of forms) {
    t.same(await list(alice, '/pub/c/', `cursor=${encodeURIComponent(cursor)}`), [u + '3', u + '4/x', u + '5'], cursor)
    t.same(await list(alice, '/pub/c/', `reverse=true&cursor=${encodeURIComponent(cursor)}`), [u + '1'], `${cursor}, reversed`)
    t.same(await list(alice, '/pub/c/', `limit=1&cursor=${encodeURIComponent(cursor)}`), [u + '3'])
  }
  t.same(await list(alice, '/pub/c/', `cursor=${encodeURIComponent(`${alice.user}/pub/c/25`)}`), [u + '3', u + '4/x', u + '5'], 'a cursor need not exist')
  t.same(await list(alice, '/pub/c/', `cursor=${encodeURIComponent(u + '5')}`), [], 'past the end')
  t.same(await list(alice, '/pub/c/', `reverse=true&cursor=${encodeURIComponent(u + '1')}`), [], 'before the start')
  t.same(await list(alice, '/pub/c/', `shallow=true&cursor=${encodeURIComponent(u + '4/')}`), [u + '5'], 'a directory cursor skips that directory')
  t.same(await list(alice, '/pub/c/', `cursor=${encodeURIComponent(u + '4/')}`), [u + '4/x', u + '5'], 'deep: the files below a directory cursor follow it')
  t.same(await list(alice, '/pub/c/', `shallow=true&reverse=true&cursor=${encodeURIComponent(u + '5')}`), [u + '4/', u + '3', u + '2', u + '1'])
  const bad = await alice.request('GET', `/pub/c/?cursor=${encodeURIComponent('pubky://not-a-key/pub/c/2')}`)
  t.equal(bad.status, 400, 'a cursor that names no path of this user')
})

t.test('reverse and shallow flags: bare keys mean true; false and 0 mean false', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  await putAll(alice, ['/pub/f/a/1', '/pub/f/a/2', '/pub/f/b', '/pub/f/c/d/e', '/pub/f/c/z'])
  const u = `pubky://${alice.user}/pub/f/`
  const deep = [u + 'a/1', u + 'a/2', u + 'b', u + 'c/d/e', u + 'c/z']
  const shallow = [u + 'a/', u + 'b', u + 'c/']
  for (const q of ['shallow', 'shallow=true', 'shallow=1']) t.same(await list(alice, '/pub/f/', q), shallow, q)
  for (const q of ['shallow=false', 'shallow=0', '']) t.same(await list(alice, '/pub/f/', q), deep, q || 'no flag')
  for (const q of ['reverse', 'reverse=true', 'reverse=1']) t.same(await list(alice, '/pub/f/', q), [...deep].reverse(), q)
  t.same(await list(alice, '/pub/f/', 'reverse=false'), deep)
  t.same(await list(alice, '/pub/f/', 'shallow&reverse'), [...shallow].reverse())
  t.same(await list(alice, '/pub/f/c/', 'shallow'), [u + 'c/d/', u + 'c/z'])
  t.same(await list(alice, '/pub/f/', 'shallow&limit=2'), shallow.slice(0, 2), 'limit counts entries, not files')
  t.equal((await alice.request('GET', '/pub/f/?shallow=maybe')).status, 400)
})

t.test('paging through a listing sees every entry once', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const paths: string[] = []
  for (let d = 0; d < 6; d++) {
    for (let f = 0; f < d * 2; f++) paths.push(`/pub/g/dir${d}/f${f}`)
    paths.push(`/pub/g/file${d}`, `/pub/g/dir${d}.txt`, `/pub/g/dir${d}/sub/deep`)
  }
  await putAll(alice, paths)
  const fullDeep = await list(alice, '/pub/g/', 'limit=1000')
  t.equal(fullDeep.length, paths.length)
  const fullShallow = await list(alice, '/pub/g/', 'limit=1000&shallow')
  t.equal(fullShallow.length, 6 + 12)
  for (const limit of [1, 2, 3, 7]) {
    for (const [what, extra, full] of [
      ['deep', '', fullDeep],
      ['deep reversed', 'reverse', [...fullDeep].reverse()],
      ['shallow', 'shallow', fullShallow],
      ['shallow reversed', 'shallow&reverse', [...fullShallow].reverse()],
    ] as const) {
      const got = await pages(alice, '/pub/g/', limit, extra)
      t.same(got.flat(), full, `${what}, ${limit} a page: all, in order, none twice`)
      t.ok(got.slice(0, -1).every((p) => p.length === limit), 'every page but the last is full')
    }
  }
})
