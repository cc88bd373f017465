import t from 'tap'
import { createServer } from 'node:http'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import type { Page } from 'playwright-core'
import { HomeserverClient, idOf } from 'hearth-homeserver-client'
import { browserMissing, launchBrowser } from './helpers/browser.js'
import { newUser, startTestServer } from './helpers/server.js'
import { AckedWrites } from './helpers/acked-writes.js'

/**
 * `hearth-homeserver-client` in a real Chromium, loaded as published (its dist/ and its three
 * dependencies, through an import map, no bundler) by a page of another origin: it signs an
 * AuthToken with WebCrypto, follows a homeserver from the start, keeps its cursor in
 * localStorage by default, and after a reload resumes after it, missing and repeating nothing.
 */

const missing = browserMissing()
const skip = missing === undefined ? false : `the client's browser tests: ${missing}`
const WAIT_MS = 60_000

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
/** URL prefix → folder the static server reads from */
const MOUNTS: [prefix: string, dir: string][] = [
  ['/client/', 'packages/client/dist/'],
  ['/zod/', 'node_modules/zod/'],
  ['/eventsource-parser/', 'node_modules/eventsource-parser/dist/'],
  ['/noble-ed25519/', 'node_modules/@noble/ed25519/'],
]
const IMPORTS = {
  'hearth-homeserver-client': '/client/index.js',
  zod: '/zod/index.js',
  'eventsource-parser': '/eventsource-parser/index.js',
  '@noble/ed25519': '/noble-ed25519/index.js',
}

/** The page: follows `user`'s events, collecting their ids in `window.received`. */
function page(homeserver: string, user: string): string {
  return `<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">${JSON.stringify({ imports: IMPORTS })}</script>
<script type="module">
  import { follow } from 'hearth-homeserver-client'
  window.received = []
  window.failed = undefined
  const follower = follow({ url: ${JSON.stringify(homeserver)}, filters: [${JSON.stringify(`${user}/*`)}], from: 'start', onRetry: (r) => console.log('retry', r.error.message), onState: (s) => console.log('state', s) })
  window.follower = follower
  try {
    for await (const event of follower) window.received.push(event.id)
  } catch (err) {
    window.failed = String(err)
  }
</script></head><body></body></html>`
}

/** Serves the page and the package's files, from an origin other than the homeserver's. */
async function staticServer(t: Tap, html: () => string): Promise<string> {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/') return void res.writeHead(200, { 'content-type': 'text/html' }).end(html())
    const mount = MOUNTS.find(([prefix]) => url.pathname.startsWith(prefix))
    const rest = mount && url.pathname.slice(mount[0].length)
    if (mount === undefined || rest === undefined || rest.includes('..')) return void res.writeHead(404).end()
    try {
      const body = await readFile(ROOT + mount[1] + rest)
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(body)
    } catch {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
}
type Tap = Pick<typeof t, 'teardown'>

async function received(page: Page, count: number): Promise<string[]> {
  try {
    await page.waitForFunction((n) => (window as unknown as { received?: string[] }).received?.length === n, count, { timeout: WAIT_MS })
  } catch (err) {
    const got = await page.evaluate(() => { const w = window as unknown as { received?: string[]; failed?: string }; return { received: w.received, failed: w.failed } })
    throw new Error(`the page did not receive ${count} events within ${WAIT_MS} ms (got ${JSON.stringify(got.received)}, ${got.failed ?? 'no error'}): ${(err as Error).message.split('\n')[0]}`)
  }
  return page.evaluate(() => (window as unknown as { received: string[] }).received)
}

t.test('in Chromium: follows from the start, keeps its cursor in localStorage, resumes after a reload', { skip }, async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const acked = new AckedWrites()
  for (let i = 0; i < 3; i++) await acked.put(alice, `/pub/app/${i}.txt`, `v${i}`)

  const origin = await staticServer(t, () => page(server.url, alice.user))
  const context = await launchBrowser(t)
  const tab = await context.newPage()
  const problems: string[] = []
  tab.on('pageerror', (err) => problems.push(err.message))
  if (process.env.HEARTH_DEBUG_BROWSER) tab.on('console', (msg) => console.error('page:', msg.text()))
  if (process.env.HEARTH_DEBUG_BROWSER) tab.on('requestfailed', (r) => console.error('failed:', r.url(), r.failure()?.errorText))
  await tab.goto(origin)
  t.same(await received(tab, 3), acked.events.map((e) => idOf(e.seq)), 'the events so far, in order')

  // the cursor is saved once the loop asked for the next event: wait for it to reach the store
  const last = idOf(acked.events.at(-1)!.seq)
  await tab.waitForFunction((id) => Object.keys(localStorage).some((k) => k.startsWith('.hearth-cursor-') && localStorage.getItem(k) === id), last, { timeout: WAIT_MS })

  await acked.put(alice, '/pub/app/3.txt', 'v3')
  t.same(await received(tab, 4), acked.events.map((e) => idOf(e.seq)), 'then live')
  await tab.waitForFunction((id) => Object.values(localStorage).includes(id), idOf(acked.events.at(-1)!.seq), { timeout: WAIT_MS })

  // a reload starts a new follower; its default store is the same localStorage key
  await tab.reload()
  await acked.put(alice, '/pub/app/4.txt', 'v4')
  t.same(await received(tab, 1), [idOf(acked.events.at(-1)!.seq)], 'after the reload: only what came after the saved cursor')
  t.same(problems, [], 'no script errors')
})

t.test('in Chromium: a keypair and an AuthToken made with WebCrypto sign a user up', { skip }, async (t) => {
  const server = await startTestServer(t)
  const origin = await staticServer(t, () => `<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">${JSON.stringify({ imports: IMPORTS })}</script></head><body></body></html>`)
  const context = await launchBrowser(t)
  const tab = await context.newPage()
  await tab.goto(origin)
  const answer = await tab.evaluate(async (url) => {
    const { keypairOf, signAuthToken } = await import('hearth-homeserver-client') as typeof import('hearth-homeserver-client')
    const keypair = await keypairOf(crypto.getRandomValues(new Uint8Array(32)))
    const token = await signAuthToken(keypair, '/:rw')
    const res = await fetch(`${url}/signup`, { method: 'POST', body: token as Uint8Array<ArrayBuffer> })
    return { status: res.status, user: keypair.z32, secret: Array.from(keypair.secretKey, (b) => b.toString(16).padStart(2, '0')).join('') }
  }, server.url)
  t.ok(answer.status >= 200 && answer.status < 300, `signed up ${answer.user} (${answer.status})`)
  // the same key, in Node, signs in: the user the page made exists
  const again = await HomeserverClient.fromSecret(server.url, answer.secret)
  t.equal(again.user, answer.user, 'Node derives the same name from the secret')
  await again.signin()
  await again.put('/pub/from-node.txt', 'hi')
  t.equal(new TextDecoder().decode(await again.get('/pub/from-node.txt')), 'hi', 'and writes as that user')
})
