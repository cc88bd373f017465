import t from 'tap'
import { newUser, startTestServer } from './helpers/server.js'
import type { Server } from '../src/server.js'
import type { HomeserverClient } from 'hearth-homeserver-client'
import { MAX_SCAN } from '../src/feed/poll.js'

/** `GET /events/` (SPEC §6.1): the upstream text feed over the one log. */

async function feed(server: Server, query = ''): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${server.url}/events/${query ? `?${query}` : ''}`)
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() }
}

/** The event lines and the cursor of one page. */
function parse(text: string): { lines: string[]; cursor?: number } {
  if (text === '') return { lines: [] }
  const lines = text.split('\n')
  const last = lines.pop()!
  const m = /^cursor: (\d+)$/.exec(last)
  if (!m) throw new Error(`a page must end with "cursor: N", not ${JSON.stringify(last)}`)
  return { lines, cursor: Number(m[1]) }
}

/**
 * PUTs every path, `concurrency` loops at once. Returns each loop's acknowledged writes as feed
 * lines, in its order: a loop waits for each write, so its writes reach the log in that order.
 */
async function putAll(client: HomeserverClient, paths: string[], concurrency = 32): Promise<string[][]> {
  const queue = [...paths]
  return Promise.all(Array.from({ length: concurrency }, async () => {
    const acked: string[] = []
    for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
      await client.put(p, p)
      acked.push(`PUT pubky://${client.user}${p}`)
    }
    return acked
  }))
}

/** Pages through the feed from the start; returns every line and the last cursor. */
async function pageAll(server: Server, limit: number, t: { ok(ok: boolean, what: string): void }): Promise<{ lines: string[]; cursor: number }> {
  const lines: string[] = []
  let cursor = 0
  for (let page = 0; ; page++) {
    const { lines: got, cursor: next } = parse((await feed(server, `cursor=${cursor}&limit=${limit}`)).text)
    if (next === undefined) return { lines, cursor }
    t.ok(next > cursor, 'the cursor only moves forward')
    lines.push(...got)
    cursor = next
    if (page > 100) throw new Error('paging does not end')
  }
}

t.test('an empty body when nothing follows the cursor; lines then "cursor: N"', async (t) => {
  const server = await startTestServer(t)
  const empty = await feed(server)
  t.equal(empty.status, 200)
  t.equal(empty.text, '', 'a fresh log')
  t.match(empty.type, /^text\/plain/)
  const alice = await newUser(server)
  await alice.put('/pub/a.txt', 'a')
  await alice.put('/pub/b/c.txt', 'c')
  await alice.delete('/pub/a.txt')
  const u = `pubky://${alice.user}`
  const all = await feed(server)
  t.equal(all.text, `PUT ${u}/pub/a.txt\nPUT ${u}/pub/b/c.txt\nDEL ${u}/pub/a.txt\ncursor: 3`, 'exact text: lines joined by \\n, no trailing newline')
  t.equal((await feed(server, 'cursor=1')).text, `PUT ${u}/pub/b/c.txt\nDEL ${u}/pub/a.txt\ncursor: 3`, 'the cursor is exclusive')
  t.equal((await feed(server, 'cursor=2&limit=1')).text, `DEL ${u}/pub/a.txt\ncursor: 3`)
  t.equal((await feed(server, 'cursor=0&limit=1')).text, `PUT ${u}/pub/a.txt\ncursor: 1`)
  t.equal((await feed(server, 'cursor=3')).text, '', 'at the head')
  t.equal((await feed(server, 'cursor=1000')).text, '', 'past the head')
  t.equal((await feed(server, 'cursor=18446744073709551615')).text, '', 'the largest u64')
  t.equal((await feed(server, 'cursor=')).text, all.text, 'an empty cursor is the start')
})

t.test('/priv/ events never appear, but the cursor moves past them', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const u = `pubky://${alice.user}`
  await alice.put('/priv/one', 'x') // 1
  await alice.put('/pub/two', 'x') // 2
  await alice.put('/priv/three', 'x') // 3
  await alice.put('/priv/four', 'x') // 4
  await alice.delete('/priv/one') // 5
  t.equal((await feed(server)).text, `PUT ${u}/pub/two\ncursor: 5`, 'trailing private events are consumed')
  t.equal((await feed(server, 'limit=1')).text, `PUT ${u}/pub/two\ncursor: 2`, 'a full page stops at its last line')
  t.equal((await feed(server, 'cursor=2')).text, 'cursor: 5', 'only private events after the cursor: the cursor moves past them')
  t.equal((await feed(server, 'cursor=4')).text, 'cursor: 5')
  t.equal((await feed(server, 'cursor=5')).text, '', 'nothing after the cursor: empty')
  await alice.put('/pub/six', 'x') // 6
  t.equal((await feed(server, 'cursor=2')).text, `PUT ${u}/pub/six\ncursor: 6`)
  const many = await feed(server, 'limit=1000')
  t.notMatch(many.text, /\/priv\//)
})

t.test('a long private stretch: each request scans a bounded part of it and says how far it got', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  await alice.put('/pub/first', 'x') // 1
  await putAll(alice, Array.from({ length: MAX_SCAN + 150 }, (_, i) => `/priv/p/${i}`))
  const head = server.ctx.events.head
  t.equal(head, MAX_SCAN + 151)
  t.equal((await feed(server, 'cursor=1')).text, `cursor: ${1 + MAX_SCAN}`, 'one request scans MAX_SCAN events')
  t.equal((await feed(server, `cursor=${1 + MAX_SCAN}&limit=1000`)).text, `cursor: ${head}`, 'the next one the rest')
  t.equal((await feed(server, `cursor=${head}`)).text, '', 'then nothing')
  await alice.put('/pub/last', 'x')
  // a poller that follows the cursor lines gets past the stretch in a bounded number of requests
  const seen: string[] = []
  let cursor = 0
  for (let requests = 1; ; requests++) {
    const { lines, cursor: next } = parse((await feed(server, `cursor=${cursor}`)).text)
    if (next === undefined) break
    seen.push(...lines)
    cursor = next
    if (requests > 3) throw new Error(`the poller is still at ${cursor} after ${requests} requests`)
  }
  t.same(seen, [`PUT pubky://${alice.user}/pub/first`, `PUT pubky://${alice.user}/pub/last`])
  t.equal(cursor, head + 1)
})

t.test('limit: default 100, at most 1000; paging sees each event once', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const bob = await newUser(server)
  const loops = (await Promise.all([
    putAll(alice, Array.from({ length: 560 }, (_, i) => `/pub/f/${i}`)),
    putAll(bob, Array.from({ length: 460 }, (_, i) => `/pub/g/${i}`)),
    putAll(bob, Array.from({ length: 30 }, (_, i) => `/priv/h/${i}`), 4),
  ])).flat().map((loop) => loop.filter((line) => line.includes('/pub/')))
  const acked = loops.flat()
  t.equal(acked.length, 1020)

  // The writes ran at once, so their order in the log comes from the feed itself: it must hold
  // every acknowledged public write once, keep each loop's order, and look the same whatever
  // the page size.
  const { lines: all } = await pageAll(server, 1000, t)
  t.same([...all].sort(), [...acked].sort(), 'every acknowledged public write once, nothing private')
  const at = new Map(all.map((line, i) => [line, i]))
  t.same(loops.filter((loop) => loop.some((line, i) => i > 0 && at.get(line)! < at.get(loop[i - 1]!)!)), [], "each loop's writes in the order they were acknowledged")

  const first = parse((await feed(server)).text)
  t.equal(first.lines.length, 100, 'default limit 100')
  t.same(first.lines, all.slice(0, 100))
  const max = parse((await feed(server, 'limit=1000')).text)
  t.equal(max.lines.length, 1000)
  t.same(max.lines, all.slice(0, 1000))
  t.equal(parse((await feed(server, 'limit=5000')).text).lines.length, 1000, 'capped at 1000')
  t.equal(parse((await feed(server, 'limit=7')).text).lines.length, 7)
  for (const q of ['limit=0', 'cursor=5&limit=0']) t.same(await feed(server, q), { status: 200, type: 'text/plain; charset=utf-8', text: '' }, `${q}: an empty page, the cursor not moved`)

  for (const limit of [100, 333, 1000]) {
    const { lines, cursor } = await pageAll(server, limit, t)
    t.same(lines, all, `limit ${limit}: the same lines, each once`)
    t.ok(cursor <= 1050, `the last cursor ${cursor} is within the 1050 acknowledged writes`)
    t.same(parse((await feed(server, `cursor=${cursor}`)).text).lines, [], 'and no public event follows it')
  }
})

t.test('bad queries are 400 JSON', async (t) => {
  const server = await startTestServer(t)
  for (const q of ['cursor=abc', 'cursor=-1', 'cursor=1.5', 'cursor=01', 'cursor=18446744073709551616', 'cursor=0x10', 'limit=abc', 'limit=-5']) {
    const res = await fetch(`${server.url}/events/?${q}`)
    t.equal(res.status, 400, q)
    t.match(res.headers.get('content-type'), /^application\/json/, `${q}: JSON`)
    const body = (await res.json()) as { error: string; message: string }
    t.match(body, { error: String, message: String }, `${q}: {error, message}`)
  }
  const cursorErr = (await (await fetch(`${server.url}/events/?cursor=abc`)).json()) as { error: string }
  t.equal(cursorErr.error, 'InvalidCursor')
})
