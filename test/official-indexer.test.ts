import t from 'tap'
import { Client, Keypair, Pubky, PublicKey } from '@synonymdev/pubky'
import { startTestServer } from './helpers/server.js'

/**
 * An indexer's view of a flow driven by @synonymdev/pubky 0.6.0: it polls `GET /events/` the
 * way upstream indexers parse it, and must see exactly the flow's writes and deletes, in order.
 */

interface Page {
  events: { type: string; uri: string }[]
  cursor: string | undefined
}

/**
 * Upstream's reading of one page: trim the body, split it into lines; a `cursor: ` line sets
 * the cursor (the last one wins); any other line splits on one space into exactly two parts.
 */
function parsePage(body: string): Page {
  const page: Page = { events: [], cursor: undefined }
  const trimmed = body.trim()
  if (trimmed === '') return page
  for (const line of trimmed.split('\n')) {
    if (line.startsWith('cursor: ')) {
      page.cursor = line.slice('cursor: '.length)
      continue
    }
    const parts = line.split(' ')
    if (parts.length !== 2) throw new Error(`an event line that is not two parts: ${JSON.stringify(line)}`)
    page.events.push({ type: parts[0]!, uri: parts[1]! })
  }
  return page
}

const server = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '0' })
const pubky = Pubky.withClient(new Client({ pkarr: { relays: [server.relays[0]!] } }))
const hs = PublicKey.from(server.ctx.keypair.z32)

type Asserts = Pick<typeof t, 'equal' | 'ok' | 'match'>

/** Follows the feed from `cursor` in pages of `limit` until a page comes back empty. */
async function follow(t: Asserts, cursor: string, limit: number): Promise<{ events: Page['events']; cursor: string; pages: number }> {
  const events: Page['events'] = []
  let pages = 0
  for (;;) {
    const res = await fetch(`${server.url}/events/?cursor=${cursor}&limit=${limit}`)
    t.equal(res.status, 200)
    const page = parsePage(await res.text())
    if (page.events.length === 0) {
      t.equal(page.cursor, undefined, 'a caught-up page is empty')
      return { events, cursor, pages }
    }
    pages++
    t.ok(page.events.length <= limit, 'a page holds at most limit events')
    t.ok(page.cursor !== undefined && /^\d+$/.test(page.cursor), 'a page with events names its cursor')
    t.ok(BigInt(page.cursor!) > BigInt(cursor), `the cursor moves forward (${cursor} → ${page.cursor})`)
    for (const e of page.events) t.match(e.type, /^(PUT|DEL)$/)
    events.push(...page.events)
    cursor = page.cursor!
  }
}

t.test('an indexer following /events/ sees exactly the flow, in order', async (t) => {
  const expected: Page['events'] = []
  const alice = Keypair.random()
  const bob = Keypair.random()
  const a = alice.publicKey.z32()
  const b = bob.publicKey.z32()
  const aliceSigner = pubky.signer(alice)
  const as = (await aliceSigner.signup(hs, null)).storage
  const bs = (await pubky.signer(bob).signup(hs, null)).storage
  const put = async (storage: typeof as, user: string, path: `/pub/${string}`, text: string) => {
    await storage.putText(path, text)
    expected.push({ type: 'PUT', uri: `pubky://${user}${path}` })
  }
  const del = async (storage: typeof as, user: string, path: `/pub/${string}`) => {
    await storage.delete(path)
    expected.push({ type: 'DEL', uri: `pubky://${user}${path}` })
  }

  await put(as, a, '/pub/pubky.app/profile.json', '{"name":"alice"}')
  await put(bs, b, '/pub/pubky.app/profile.json', '{"name":"bob"}')
  await as.putJson('/pub/pubky.app/posts/0001', { content: 'first' })
  expected.push({ type: 'PUT', uri: `pubky://${a}/pub/pubky.app/posts/0001` })
  await as.putBytes('/pub/pubky.app/blobs/0001', Uint8Array.of(1, 2, 3))
  expected.push({ type: 'PUT', uri: `pubky://${a}/pub/pubky.app/blobs/0001` })
  await put(bs, b, '/pub/pubky.app/posts/0001', 'bob says hi')
  await put(as, a, '/pub/pubky.app/profile.json', '{"name":"alice, again"}') // an overwrite is another PUT
  // The typings name only /pub/ paths; the client writes /priv/ all the same.
  await (as as unknown as { putText(path: string, text: string): Promise<void> }).putText('/priv/secret.txt', 'private')
  await del(bs, b, '/pub/pubky.app/posts/0001')
  await t.rejects(as.delete('/pub/pubky.app/never-written'), 'deleting what is absent adds nothing')
  await put(bs, b, '/pub/pubky.app/posts/0002', 'bob again')
  await del(as, a, '/pub/pubky.app/blobs/0001')
  await put(as, a, '/pub/pubky.app/posts/0002', 'second')

  const first = await follow(t, '0', 3)
  t.same(first.events, expected, 'every public write and delete, in order, and nothing else')
  t.equal(first.pages, Math.ceil(expected.length / 3))
  t.equal(server.ctx.events.head, expected.length + 1, 'the log holds one more event: the private write')

  // An indexer's replay of the feed rebuilds the file set the client lists.
  const files = new Set<string>()
  for (const e of first.events) e.type === 'PUT' ? files.add(e.uri) : files.delete(e.uri)
  const listed = [...(await as.list('/pub/')), ...(await bs.list('/pub/'))]
  t.same([...files].sort(), listed.sort())

  // Resuming from the saved cursor yields only what came after it.
  const aliceSession = await aliceSigner.signin()
  await aliceSession.storage.putText('/pub/pubky.app/posts/0003', 'third')
  await aliceSession.signout()
  await t.rejects(aliceSession.storage.putText('/pub/pubky.app/posts/0004', 'refused'), 'a refused write adds nothing')
  const resumed = await follow(t, first.cursor, 3)
  t.same(resumed.events, [{ type: 'PUT', uri: `pubky://${a}/pub/pubky.app/posts/0003` }])

  // One long page agrees with the short ones.
  const whole = parsePage(await (await fetch(`${server.url}/events/?limit=1000`)).text())
  t.same(whole.events, [...first.events, ...resumed.events])
  t.equal(whole.cursor, resumed.cursor)
})
