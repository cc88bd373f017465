import t from 'tap'
import http from 'node:http'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { newUser, startTestServer } from './helpers/server.js'
import type { Server } from '../src/server.js'
import { fileCost } from '../src/events/writer.js'
import type { HomeserverClient } from 'hearth-homeserver-client'
import { until } from './helpers/until.js'
import { Slots } from '../src/slots.js'
import { HearthError } from '../src/errors.js'

/** MAX_BODY (SPEC §1, §3): 413 for bodies past it, without buffering them, and nothing left behind. */

const MiB = 1024 * 1024

interface Upload {
  status?: number
  body: string
  /** body bytes the client managed to hand to its socket before it stopped */
  sent: number
  /** whether the whole body was handed over before the answer came */
  finished: boolean
}

/**
 * PUTs `total` bytes in 64 KiB chunks, declared with Content-Length or sent chunked. Writing
 * stops as soon as the answer arrives or the connection goes, so `sent` shows how much the
 * server took before refusing. With `headersOnly`, no body byte is sent at all.
 */
function upload(server: Server, client: HomeserverClient, path: string, total: number, opts: { declared: boolean; headersOnly?: boolean }): Promise<Upload> {
  const { hostname, port } = new URL(server.url)
  const headers: Record<string, string> = { ...client.headers() }
  if (opts.declared) headers['content-length'] = String(total)
  const chunk = Buffer.alloc(64 * 1024, 7)
  return new Promise((resolve) => {
    const out: Upload = { body: '', sent: 0, finished: false }
    let done = false
    const finish = () => {
      if (done) return
      done = true
      req.destroy()
      resolve(out)
    }
    const req = http.request({ host: hostname, port, method: 'PUT', path, headers, agent: false }, (res) => {
      out.status = res.statusCode
      res.setEncoding('utf8')
      res.on('data', (c: string) => (out.body += c))
      res.on('end', finish)
      res.on('error', finish)
    })
    req.on('error', finish)
    req.on('close', () => setTimeout(finish, 100))
    if (opts.headersOnly) {
      req.flushHeaders()
      return
    }
    const pump = () => {
      while (!done && out.status === undefined && out.sent < total) {
        const piece = chunk.subarray(0, Math.min(chunk.length, total - out.sent))
        out.sent += piece.length
        if (!req.write(piece)) return void req.once('drain', pump)
      }
      if (!done && out.status === undefined && out.sent >= total) {
        out.finished = true
        req.end()
      }
    }
    pump()
  })
}

const blobFiles = async (server: Server) => (await server.ctx.writer.idle(), readdirSync(join(server.ctx.config.dataDir, 'blobs')))

t.test('MAX_BODY=1MiB: exactly 1 MiB is stored, one byte more is 413', async (t) => {
  const server = await startTestServer(t, { MAX_BODY: '1MiB' })
  const alice = await newUser(server)

  const fits = await upload(server, alice, '/pub/fits.bin', MiB, { declared: true })
  t.equal(fits.status, 201, '1 MiB with Content-Length')
  const fitsChunked = await upload(server, alice, '/pub/fits2.bin', MiB, { declared: false })
  t.equal(fitsChunked.status, 201, '1 MiB chunked')
  t.equal((await blobFiles(server)).length, 2)
  const head = server.ctx.events.head

  const declared = await upload(server, alice, '/pub/over.bin', MiB + 1, { declared: true, headersOnly: true })
  t.equal(declared.status, 413, 'a declared length past the limit is refused before any body byte is sent')
  t.match(declared.body, /larger than/)
  t.equal(declared.sent, 0)

  const declaredSending = await upload(server, alice, '/pub/over.bin', MiB + 1, { declared: true })
  t.equal(declaredSending.status, 413, 'and while the client is sending it')

  const chunked = await upload(server, alice, '/pub/over.bin', MiB + 1, { declared: false })
  t.equal(chunked.status, 413, 'chunked, cut off while streaming')
  t.match(chunked.body, /larger than/, 'with the answer that says why, not a bare reset')
  // Socket buffers on loopback absorb a few MiB whatever the server does; 32 MiB is past them.
  const chunkedBig = await upload(server, alice, '/pub/over.bin', 32 * MiB, { declared: false })
  t.equal(chunkedBig.status, 413)
  t.ok(chunkedBig.sent < 16 * MiB, `the server stopped the upload early (${(chunkedBig.sent / MiB).toFixed(1)} of 32 MiB taken)`)

  t.equal((await alice.request('GET', '/pub/over.bin')).status, 404, 'nothing was stored')
  t.equal(server.ctx.events.head, head, 'no event for a refused upload')
  t.equal((await blobFiles(server)).length, 2, 'no partial blob left in <data>/blobs')
  t.equal((await server.ctx.users.get(alice.user))!.usage, fileCost('/pub/fits.bin', MiB) + fileCost('/pub/fits2.bin', MiB), 'usage counts only stored files')

  await alice.put('/pub/after.txt', 'still serving')
  t.equal(Buffer.from(await alice.get('/pub/after.txt')).toString(), 'still serving', 'the server keeps serving')
})

t.test('a 101 MiB declared body against the default limit: 413 without being received', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  t.equal(server.ctx.config.maxBody, 100 * MiB, 'the default limit')
  const total = 101 * MiB
  const rssBefore = process.memoryUsage().rss
  const res = await upload(server, alice, '/pub/huge.bin', total, { declared: true })
  const rssGrowth = process.memoryUsage().rss - rssBefore
  t.equal(res.status, 413)
  t.notOk(res.finished, 'answered before the client finished sending')
  t.ok(res.sent < 32 * MiB, `the client could hand over only ${(res.sent / MiB).toFixed(1)} MiB before the refusal`)
  t.ok(rssGrowth < 50 * MiB, `memory grew by ${(rssGrowth / MiB).toFixed(1)} MiB, far below the body size`)
  t.equal((await blobFiles(server)).length, 0)
  t.equal(server.ctx.events.head, 0)

  // Many at once, on fresh connections: still refused, still serving.
  const many = await Promise.all(Array.from({ length: 8 }, (_, i) => upload(server, alice, `/pub/h${i}`, total, { declared: true })))
  t.same(many.map((u) => u.status), Array(8).fill(413))
  t.ok(process.memoryUsage().rss - rssBefore < 100 * MiB, 'eight refused 101 MiB uploads did not make the server hold 808 MiB')
  await alice.put('/pub/small.txt', 'ok')
  t.equal(Buffer.from(await alice.get('/pub/small.txt')).toString(), 'ok')
})

t.test('an unauthenticated large upload is answered 401 without waiting for its body', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const stranger = { headers: () => ({ 'pubky-host': alice.user }) } as unknown as HomeserverClient
  const res = await upload(server, stranger, '/pub/x', 50 * MiB, { declared: true })
  t.equal(res.status, 401)
  t.notOk(res.finished, 'the answer came before the client finished sending')
})

t.test('a body that stalls is cut off with 408, and gives its upload slot back', async (t) => {
  // room for all three uploads below, whatever order the server takes them in: the limit
  // itself is the unit test after this one
  const server = await startTestServer(t, { BODY_IDLE_MS: '400', UPLOADS_PER_USER: '3', UPLOADS_TOTAL: '3' })
  const alice = await newUser(server)
  const { hostname, port } = new URL(server.url)
  /** A PUT that promises a MiB, sends 100 KB (past inline: it streams) and then nothing; resolves with its answer's status. */
  const stalled = (path: string) => new Promise<number>((resolve, reject) => {
    const req = http.request({ host: hostname, port, method: 'PUT', path, headers: { ...alice.headers(), 'content-length': String(MiB) } }, (res) => {
      res.resume()
      resolve(res.statusCode!)
    })
    req.on('error', reject)
    req.write(Buffer.alloc(100_000))
  })
  const first = stalled('/pub/stall/1')
  const second = stalled('/pub/stall/2')
  // both are being read (the server holds their slots) until they stall out
  const third = await alice.request('PUT', '/pub/stall/3', Buffer.alloc(100_000))
  const statuses = [await first, await second]
  t.same(statuses, [408, 408], 'each stalled body is cut off with 408')
  t.equal(third.status, 201, 'a third upload of the same user meanwhile goes through')
  // the slots come back as the cut-off bodies end, just after their answers: then all three
  // are free for three more large uploads at once (UPLOADS_TOTAL is 3)
  await until(async () => {
    const puts = await Promise.all([1, 2, 3].map((i) => alice.request('PUT', `/pub/after/${i}`, Buffer.alloc(100_000))))
    return puts.every((r) => r.status === 201)
  }, 'three large PUTs at once to be taken once the stalled uploads are gone')
  t.pass('their slots are free again')
  for (const p of ['/pub/stall/1', '/pub/stall/2']) t.equal((await alice.request('GET', p)).status, 404, `${p} was not stored`)
})

/** The status a refused acquire throws, or 0 when it is taken. */
function refusal(acquire: () => unknown): number {
  try {
    acquire()
    return 0
  } catch (err) {
    return err instanceof HearthError ? err.status : -1
  }
}

t.test('upload slots: so many per user (429), so many in all (503), given back once', async (t) => {
  const slots = new Slots({ perKey: 2, total: 3, what: 'large uploads in progress per user' })
  const a1 = slots.acquire('a')
  slots.acquire('a')
  t.equal(refusal(() => slots.acquire('a')), 429, 'a third of one user')
  const b1 = slots.acquire('b')
  t.equal(refusal(() => slots.acquire('c')), 503, 'a fourth in all')
  a1()
  a1() // given back once only
  t.doesNotThrow(() => slots.acquire('c'), 'a slot given back is taken again')
  t.equal(refusal(() => slots.acquire('d')), 503, 'the double release freed nothing more')
  b1()
})
