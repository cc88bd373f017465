import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { follow, type FollowOptions } from 'hearth-homeserver-client/follow'
import { FollowProtocolError, type FollowEvent } from 'hearth-homeserver-client'
import type { SnapshotFile } from 'hearth-homeserver-client/snapshot'
import { idOf } from 'hearth-homeserver-client/id'
import type { Teardown } from './helpers/server.js'

/**
 * What the follower does when the server is broken or hostile, which no real homeserver can
 * be made to do: a server of a few lines that sends exactly the bytes each case needs.
 */
async function scripted(t: Teardown, subscribe: (res: http.ServerResponse, attempt: number) => void): Promise<string> {
  let attempts = 0
  const server = http.createServer((req, res) => {
    if (req.url === '/info') return void res.end(JSON.stringify({ events: { head: '3' } }))
    subscribe(res, ++attempts)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const eventData = (seq: number) =>
  ({ id: idOf(BigInt(seq)), seq: String(seq), type: 'PUT', user: 'u', path: `/pub/${seq}`, uri: `pubky://u/pub/${seq}`, contentHash: 'h', size: 1, ts: 1 })

const frame = (seq: number) => `id: ${idOf(BigInt(seq))}\nevent: PUT\ndata: ${JSON.stringify(eventData(seq))}\n\n`

/** A file of a snapshot, under a resume token. */
const fileFrame = (seq: number, token: string) => `id: ${token}\nevent: PUT\ndata: ${JSON.stringify({ ...eventData(seq), snapshot: true })}\n\n`

const options = (url: string, extra: Partial<FollowOptions> = {}): FollowOptions =>
  ({ url, cursorStore: 'memory', from: 'start', ack: 'auto', backoff: { baseMs: 10, maxMs: 50 }, ...extra })

/** Takes events until the follower throws; resolves with both. */
async function drain(options: FollowOptions): Promise<{ seqs: string[]; error: unknown }> {
  const seqs: string[] = []
  try {
    for await (const ev of follow(options) as AsyncIterable<FollowEvent>) seqs.push(ev.seq)
  } catch (error) {
    return { seqs, error }
  }
  return { seqs, error: undefined }
}

t.test('an event that does not come after the last one ends the follower, after the good ones', async (t) => {
  const url = await scripted(t, (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(frame(1) + frame(2) + frame(3) + frame(3))
  })
  const { seqs, error } = await drain(options(url))
  t.same(seqs, ['1', '2', '3'], 'what came before the bad frame is delivered')
  t.ok(error instanceof FollowProtocolError, 'then a protocol error')
  t.match((error as Error).message, /event 3 after position 3/)
})

t.test('an id-only frame that goes back is refused too; one that repeats the position is a keepalive', async (t) => {
  const url = await scripted(t, (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(`${frame(1)}${frame(2)}id: ${idOf(2n)}\n\nid: ${idOf(1n)}\n\n`)
  })
  const { seqs, error } = await drain(options(url))
  t.same(seqs, ['1', '2'])
  t.match((error as Error).message, /went back from 2 to 1/)
})

t.test('a frame longer than maxFrameBytes ends the follower instead of growing a buffer', async (t) => {
  const url = await scripted(t, (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(frame(1))
    res.write('event: PUT\ndata: ' + 'x'.repeat(256 * 1024))
  })
  const { seqs, error } = await drain(options(url, { maxFrameBytes: 64 * 1024 }))
  t.same(seqs, ['1'])
  t.ok(error instanceof FollowProtocolError)
  t.match((error as Error).message, /more than 65536 characters/)
})

t.test('a server that never answers, or answers and says nothing, is retried and reported', async (t) => {
  const reasons: string[] = []
  const url = await scripted(t, (res, attempt) => {
    if (attempt === 1) return // no headers, ever
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    if (attempt === 2) return void res.flushHeaders() // headers, then silence
    res.write(frame(1))
  })
  const f = follow(options(url, { idleTimeoutMs: 1000, onRetry: ({ error }) => void reasons.push(error.message) }))
  const first = await f.next()
  t.equal(first.value?.seq, '1', 'a later attempt delivers')
  await f.close()
  t.ok(reasons.some((r) => /no answer within 1000 ms/.test(r)), `no headers: retried (${reasons.join('; ')})`)
  t.ok(reasons.some((r) => /sent nothing for 1000 ms/.test(r)), 'headers and then silence: retried')
})

t.test('a broken frame with an id of its own moves no saved cursor past the last good event', async (t) => {
  const url = await scripted(t, (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    // frame 3's id and its data disagree
    res.write(frame(1) + frame(2) + frame(3).replace('"seq":"3"', '"seq":"4"'))
  })
  const saved: string[] = []
  const { seqs, error } = await drain(options(url, { cursorStore: { load: async () => undefined, save: async (id) => void saved.push(id) } }))
  t.same(seqs, ['1', '2'])
  t.ok(error instanceof FollowProtocolError)
  t.same(saved.at(-1), idOf(2n), 'the last position saved is the last event delivered')
})

t.test('an error answer whose body never comes is given up on and retried', async (t) => {
  const reasons: string[] = []
  const url = await scripted(t, (res, attempt) => {
    if (attempt === 1) return void res.writeHead(503, { 'content-length': '100' }).flushHeaders() // and no body
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(frame(1))
  })
  const f = follow(options(url, { idleTimeoutMs: 1000, onRetry: ({ error }) => void reasons.push(error.message) }))
  t.equal((await f.next()).value?.seq, '1')
  await f.close()
  t.ok(reasons.some((r) => /no whole answer .* within 1000 ms/.test(r)), `the stalled body was given up on (${reasons.join('; ')})`)
})

t.test('a server that accepts and hangs up at once meets a growing backoff', async (t) => {
  const attempts: number[] = []
  const url = await scripted(t, (res, attempt) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    if (attempt < 5) return void res.end()
    res.write(frame(1))
  })
  const f = follow(options(url, { onRetry: ({ attempt }) => void attempts.push(attempt) }))
  t.equal((await f.next()).value?.seq, '1')
  await f.close()
  t.same(attempts, [1, 2, 3, 4], 'each drop without a word counts as one more failed attempt')
})

t.test('a snapshot stream that breaks its rules ends the follower after the good frames, its position on the last of them', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['an event without a resume token', `id: ${idOf(3n)}\nevent: PUT\ndata: ${JSON.stringify(eventData(3))}\n\n`, /without a resume token/],
    ['a token that cannot go back in a header', fileFrame(3, '~a b'), /without a resume token/],
    ['synced below a frame', `id: ${idOf(1n)}\nevent: synced\ndata: {"seq":"1","files":2}\n\n`, /synced at 1, below a snapshot frame at 2/],
    ['a reset that does not restart the snapshot', 'event: reset\ndata: {"requested":"0","floor":"2"}\n\n', /does not restart it/],
  ]
  for (const [what, bad, message] of cases) {
    const url = await scripted(t, (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(fileFrame(1, '~t1') + fileFrame(2, '~t2') + bad + frame(4))
    })
    const files: SnapshotFile[] = []
    const saved: string[] = []
    const { seqs, error } = await drain({
      ...options(url), from: undefined,
      cursorStore: { load: async () => undefined, save: async (id) => void saved.push(id) },
      snapshot: { onStart: () => {}, onFile: (file) => void files.push(file) },
    })
    t.same(files.map((f) => f.cursor), ['~t1', '~t2'], `${what}: the frames before it are handed over`)
    t.same(seqs, [], `${what}: no event`)
    t.ok(error instanceof FollowProtocolError, `${what}: a protocol error`)
    t.match((error as Error).message, message)
    t.equal(saved.at(-1), '~t2', `${what}: the position saved is the last good frame`)
  }
})
