import t from 'tap'
import { newUser, startTestServer } from './helpers/server.js'

// SPEC §3: files are served as data, never as active content of the homeserver's origin.
// Every file answer says nosniff; one whose type a browser would run is also sandboxed.

const PAGE = '<!doctype html><html><body><script>fetch("/session")</script></body></html>'
const SANDBOX = "sandbox; default-src 'none'"
const PNG = Uint8Array.from(Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex'))

t.test('nosniff on every file answer; a CSP sandbox on HTML, SVG, XML and JavaScript', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const files: [string, string | Uint8Array<ArrayBuffer>, string, boolean][] = [
    ['/pub/site/index.html', PAGE, 'text/html', true],
    ['/pub/site/page.htm', PAGE, 'text/html', true],
    ['/pub/site/page.xhtml', PAGE, 'application/xhtml+xml', true],
    ['/pub/site/logo.svg', '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 'image/svg+xml', true],
    ['/pub/site/data.xml', '<?xml version="1.0"?><a/>', 'application/xml', true],
    ['/pub/site/feed.rss', '<rss/>', 'application/rss+xml', true],
    ['/pub/site/app.js', 'alert(1)', 'text/javascript', true],
    ['/pub/site/app.mjs', 'alert(1)', 'text/javascript', true],
    ['/pub/site/notes.txt', PAGE, 'text/plain', false],
    ['/pub/site/no-extension', PAGE, 'application/octet-stream', false],
    ['/pub/site/pic.png', PNG, 'image/png', false],
    ['/pub/site/data.json', '{"a":1}', 'application/json', false],
    ['/priv/mine.html', PAGE, 'text/html', true],
  ]
  for (const [path, body, type] of files) {
    await alice.put(path, body)
    t.match((await alice.request('HEAD', path)).headers.get('content-type'), type, `${path} is stored as ${type}`)
  }
  for (const [path, , type, active] of files) {
    for (const method of ['GET', 'HEAD']) {
      const res = await alice.request(method, path)
      t.equal(res.status, 200)
      t.equal(res.headers.get('x-content-type-options'), 'nosniff', `${method} ${path}: nosniff`)
      t.equal(res.headers.get('content-security-policy'), active ? SANDBOX : null, `${method} ${path} (${type}): ${active ? 'sandboxed' : 'no CSP'}`)
    }
  }
  const byPath = await fetch(`${server.url}/storage/${alice.user}/pub/site/index.html`)
  t.equal(await byPath.text(), PAGE, 'path-addressed: the bytes as written')
  t.same([byPath.headers.get('x-content-type-options'), byPath.headers.get('content-security-policy')], ['nosniff', SANDBOX])
  const etag = byPath.headers.get('etag')!
  const cached = await fetch(`${server.url}/storage/${alice.user}/pub/site/index.html`, { headers: { 'if-none-match': etag } })
  t.equal(cached.status, 304)
  t.same([cached.headers.get('x-content-type-options'), cached.headers.get('content-security-policy')], ['nosniff', SANDBOX], '304 too')
  const listing = await fetch(`${server.url}/storage/${alice.user}/pub/site/`)
  t.equal(listing.headers.get('x-content-type-options'), 'nosniff', 'listings too')
  t.equal(listing.headers.get('content-security-policy'), null)
  // readable by other origins' apps through CORS, as before
  const cors = await fetch(`${server.url}/storage/${alice.user}/pub/site/app.js`, { headers: { origin: 'https://app.example' } })
  t.equal(cors.headers.get('access-control-allow-origin'), 'https://app.example')
  t.equal(await cors.text(), 'alert(1)')
})
