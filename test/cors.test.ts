import t from 'tap'
import { newUser, startTestServer } from './helpers/server.js'
import { RawStream } from './helpers/feed.js'

/**
 * CORS on the feeds (SPEC §2): any origin may follow them, with its cookie, and read their
 * errors; preflights are answered. Storage has its own CORS checks (storage.test.ts).
 */

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const origin = 'https://app.example'
const server = await startTestServer(t)
const alice = await newUser(server)
await alice.put('/pub/cors/open.txt', 'open')
await alice.put('/priv/cors/own.txt', 'own')
const cookie = `${alice.user}=${alice.session}`

/** The headers a browser needs to hand a credentialed cross-origin answer to the page. */
function allowsOrigin(t: Test, headers: Headers, what: string): void {
  t.equal(headers.get('access-control-allow-origin'), origin, `${what}: the origin echoed, not *`)
  t.equal(headers.get('access-control-allow-credentials'), 'true', `${what}: credentials allowed`)
  t.match(headers.get('vary') ?? '', /origin/i, `${what}: Vary: Origin, so no cache hands it to another origin`)
}

const feeds: [string, string][] = [
  ['/subscribe', `/subscribe?filter=${alice.user}/*&lastSeq=0`],
  ['/events-stream', `/events-stream?user=${alice.user}&live=true`],
  ['/events/', '/events/?cursor=0'],
]

t.test('preflights are answered for every feed', async (t) => {
  for (const [name, path] of feeds) {
    const pre = await fetch(server.url + path, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'last-event-id, cache-control' },
    })
    t.equal(pre.status, 204, `${name}: preflight answered`)
    allowsOrigin(t, pre.headers, `${name} preflight`)
    t.match(pre.headers.get('access-control-allow-methods') ?? '', /\bGET\b/, `${name}: GET allowed`)
    t.match(pre.headers.get('access-control-allow-headers') ?? '', /last-event-id/i, `${name}: Last-Event-ID may be sent, for resuming`)
    await pre.arrayBuffer()
  }
})

t.test('the streams answer a cross-origin request with the CORS headers, and stream', async (t) => {
  for (const path of [
    `/subscribe?filter=${alice.user}/*&lastSeq=0`,
    `/subscribe?filter=${alice.user}/*&lastSeq=0&live=false`,
    `/subscribe/${alice.user}/*?lastSeq=0`,
    `/events-stream?user=${alice.user}&live=true`,
    `/events-stream?user=${alice.user}`,
    `/events-stream?user=${alice.user}&reverse=true`,
  ]) {
    const s = await RawStream.open(server.url + path, { origin })
    t.teardown(() => s.close())
    t.equal(s.response.status, 200, path)
    allowsOrigin(t, s.response.headers, path)
    await s.until(() => s.events().length === 1)
    t.match(s.events()[0]!.data, /\/pub\/cors\/open\.txt/, `${path}: the public event arrives`)
    s.close()
  }
})

t.test("with the owner's cookie, a cross-origin page follows the private events too", async (t) => {
  for (const path of [`/subscribe?filter=${alice.user}/priv/*&lastSeq=0&live=false`, `/events-stream?user=${alice.user}&path=/priv/`]) {
    const s = await RawStream.open(server.url + path, { origin, cookie })
    t.equal(s.response.status, 200, path)
    allowsOrigin(t, s.response.headers, path)
    const frames = await s.all()
    t.match(frames.filter((f) => f.event === 'PUT').map((f) => f.data), [/\/priv\/cors\/own\.txt/], `${path}: the private event`)
  }
})

t.test('/events/ answers cross-origin with the CORS headers', async (t) => {
  const res = await fetch(`${server.url}/events/?cursor=0`, { headers: { origin } })
  t.equal(res.status, 200)
  allowsOrigin(t, res.headers, '/events/')
  t.match(await res.text(), new RegExp(`^PUT pubky://${alice.user}/pub/cors/open\\.txt\\ncursor: `))
})

t.test('errors carry the CORS headers, so the page can read why', async (t) => {
  const errors: [string, number][] = [
    ['/subscribe?lastSeq=999999', 400],
    ['/subscribe?filter=notakey/*', 400],
    [`/events-stream?user=${alice.user}&limit=0`, 400],
    [`/events-stream?user=${alice.user}&path=/priv/`, 401],
    ['/events/?cursor=abc', 400],
  ]
  for (const [path, status] of errors) {
    const res = await fetch(server.url + path, { headers: { origin } })
    t.equal(res.status, status, path)
    allowsOrigin(t, res.headers, path)
    t.not(await res.text(), '', `${path}: with a body that says why`)
  }
})
