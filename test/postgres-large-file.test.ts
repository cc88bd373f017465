import t from 'tap'
import { createHash } from 'node:crypto'
import { request } from 'node:http'
import type { ChildServer } from './helpers/child-server.js'
import { requirePostgres } from './helpers/postgres.js'
import { instances } from './helpers/instances.js'
import { newUser } from './helpers/server.js'

/**
 * SPEC §9: file bodies live in PostgreSQL, so any instance serves any file. A 100 MiB PUT on
 * one instance and its GET from another stream through in bounded memory, byte for byte.
 */
const MiB = 1024 * 1024
const SIZE = 100 * MiB

/** Deterministic bytes, made chunk by chunk as they are sent: the test holds none of them. */
function chunk(n: number): Buffer {
  const b = Buffer.alloc(MiB, n & 0xff)
  b.writeUInt32BE(n, 0)
  return b
}

if (await requirePostgres(t)) {
  t.test('a 100 MiB file: PUT on one instance, GET from another, bounded memory on both', async (t) => {
    const [a, b] = (await instances(t, 2)) as [ChildServer, ChildServer]
    const alice = await newUser(a)
    const [rssA, rssB] = [a.rss(), b.rss()]

    const sent = createHash('sha256')
    const status = await new Promise<number>((resolve, reject) => {
      const { hostname, port } = new URL(a.url)
      const req = request({ hostname, port, path: '/pub/big.bin', method: 'PUT', headers: { ...alice.headers(), 'content-length': String(SIZE) } }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.on('error', reject)
      let n = 0
      const pump = () => {
        while (n < SIZE / MiB) {
          const c = chunk(n++)
          sent.update(c)
          if (!req.write(c)) return void req.once('drain', pump)
        }
        req.end()
      }
      pump()
    })
    t.equal(status, 201, 'stored')
    const peakA = a.rss()

    const res = await fetch(`${b.url}/storage/${alice.user}/pub/big.bin`)
    t.equal(res.status, 200)
    t.equal(res.headers.get('content-length'), String(SIZE))
    const got = createHash('sha256')
    let size = 0
    let peakB = 0
    for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
      got.update(piece)
      size += piece.length
      if (size % (8 * MiB) < piece.length) peakB = Math.max(peakB, b.rss())
    }
    t.equal(size, SIZE)
    t.equal(got.digest('hex'), sent.digest('hex'), 'the other instance serves the same bytes')
    // RSS keeps what the allocator has not given back (streaming the file churns through 100 MiB
    // of pages): 49-66 MiB were seen for the GET on an idle machine, and up to 112 MiB on Node 24
    // with both cores busy, where collections come later. A copy of the body held anywhere adds
    // 100 MiB on top of that churn (150 and more); live memory is bounded more tightly by the
    // store's own conformance case.
    const BOUND = 144 * MiB
    t.ok(peakA - rssA < BOUND, `the writing instance grew by ${((peakA - rssA) / MiB).toFixed(0)} MiB, under 144`)
    t.ok(peakB - rssB < BOUND, `the serving instance grew by ${((peakB - rssB) / MiB).toFixed(0)} MiB, under 144`)
  })
}
