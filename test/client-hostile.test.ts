import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { follow, type FollowOptions } from '../src/client/follow.js'
import { FollowProtocolError, type FollowEvent } from '../src/client/events.js'
import { idOf } from '../src/shared/id.js'
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

const frame = (seq: number) => {
  const id = idOf(BigInt(seq))
  const ev = { id, seq: String(seq), type: 'PUT', user: 'u', path: `/pub/${seq}`, uri: `pubky://u/pub/${seq}`, contentHash: 'h', size: 1, ts: 1 }
  return `id: ${id}\nevent: PUT\ndata: ${JSON.stringify(ev)}\n\n`
}

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
