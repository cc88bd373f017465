import t from 'tap'
import http from 'node:http'
import { randomBytes } from 'node:crypto'
import net, { type AddressInfo } from 'node:net'
import { keypairFromSecret } from '../src/auth/keys.js'
import { apexEndpoints, homeserverPacket, parsePayload, signPacket, homeserverDns } from '../src/pkarr/packet.js'
import { createPkarrRelay, PAYLOAD_CONTENT_TYPE } from '../src/pkarr/pkarr-relay.js'
import { startPublisher, type PublishLog } from '../src/pkarr/publisher.js'
import { startTestServer } from './helpers/server.js'
import { until } from './helpers/until.js'

const secret = () => Uint8Array.from(randomBytes(32))
const quiet: PublishLog = { info() {}, warn() {} }

async function relayAt(t: { teardown(fn: () => unknown): void }, maxEntries = 100, port = 0) {
  const relay = createPkarrRelay({ maxEntries })
  const url = await relay.listen({ host: '127.0.0.1', port })
  t.teardown(() => relay.close())
  return { relay, url }
}

/** A publish log a test can look into: the records so far. */
function watchedLog() {
  const published: { timestamp: bigint }[] = []
  const failed: object[] = []
  const log: PublishLog = {
    info: (o) => void published.push({ timestamp: BigInt((o as { timestamp: string }).timestamp) }),
    warn: (o) => void failed.push(o),
  }
  return { log, published, failed }
}

const put = (url: string, body: Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'PUT', body, headers })

t.test('PUT then GET answers the same bytes with their length', async (t) => {
  const { url } = await relayAt(t)
  const key = secret()
  const { z32, payload, timestamp } = homeserverPacket(key, { host: 'localhost', port: 6286 })
  const res = await put(`${url}/${z32}`, payload)
  t.equal(res.status, 204)
  const got = await fetch(`${url}/${z32}`)
  t.equal(got.status, 200)
  t.equal(got.headers.get('content-type'), PAYLOAD_CONTENT_TYPE)
  t.equal(got.headers.get('content-length'), String(payload.length))
  t.equal(got.headers.get('cache-control'), 'public, max-age=3600')
  t.equal(got.headers.get('last-modified'), new Date(Number(timestamp / 1000n)).toUTCString())
  t.same(new Uint8Array(await got.arrayBuffer()), payload)

  const lastModified = got.headers.get('last-modified')!
  const cached = await fetch(`${url}/${z32}`, { headers: { 'if-modified-since': lastModified } })
  t.equal(cached.status, 304, 'not modified since')

  const twice = await fetch(`${url}//${z32}`)
  t.equal(twice.status, 200, 'a doubled slash after the relay URL still routes')
})

t.test('errors: absent, bad key, bad signature, oversize, older, If-Match', async (t) => {
  const { url } = await relayAt(t)
  const key = secret()
  const { z32 } = keypairFromSecret(key)
  const dns = homeserverDns(z32, { host: 'localhost', port: 1 })

  t.equal((await fetch(`${url}/${z32}`)).status, 404, 'absent')
  t.equal((await fetch(`${url}/not-a-key`)).status, 400, 'bad key on GET')
  t.equal((await put(`${url}/not-a-key`, signPacket(key, dns))).status, 400, 'bad key on PUT')

  const forged = signPacket(key, dns, 10n)
  forged[5]! ^= 0xff
  t.equal((await put(`${url}/${z32}`, forged)).status, 400, 'bad signature')
  const otherKey = keypairFromSecret(secret()).z32
  t.equal((await put(`${url}/${otherKey}`, signPacket(key, dns))).status, 400, 'signed by another key')
  t.equal((await put(`${url}/${z32}`, new Uint8Array(40))).status, 400, 'malformed')
  t.equal((await put(`${url}/${z32}`, new Uint8Array(72 + 1001))).status, 413, 'over 1000 bytes of DNS')

  t.equal((await put(`${url}/${z32}`, signPacket(key, dns, 2000n))).status, 204)
  t.equal((await put(`${url}/${z32}`, signPacket(key, dns, 1000n))).status, 409, 'older')
  t.equal((await put(`${url}/${z32}`, signPacket(key, dns, 3000n), { 'if-match': '1999' })).status, 412, 'If-Match mismatch')
  t.equal((await put(`${url}/${z32}`, signPacket(key, dns, 3000n), { 'if-match': 'soon' })).status, 412, 'If-Match garbage')
  t.equal((await put(`${url}/${z32}`, signPacket(key, dns, 3000n), { 'if-match': '2000' })).status, 204, 'If-Match match')
  t.equal((await put(`${url}/${z32}`, signPacket(key, dns, 3000n))).status, 204, 'same packet again')
  const held = parsePayload(keypairFromSecret(key).publicKey, new Uint8Array(await (await fetch(`${url}/${z32}`)).arrayBuffer()))
  t.equal(held.timestamp, 3000n)
})

t.test('CORS is permissive', async (t) => {
  const { url } = await relayAt(t)
  const pre = await fetch(`${url}/${keypairFromSecret(secret()).z32}`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'if-match' },
  })
  t.equal(pre.status, 204)
  t.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example')
  t.match(pre.headers.get('access-control-allow-methods'), /PUT/)
  t.match(pre.headers.get('access-control-allow-headers'), /if-match/i)
})

t.test('keeps at most maxEntries, dropping the least recently updated', async (t) => {
  const { relay, url } = await relayAt(t, 2)
  const keys = [secret(), secret(), secret()]
  const packets = keys.map((k) => homeserverPacket(k, { host: 'localhost', port: 1 }))
  await put(`${url}/${packets[0]!.z32}`, packets[0]!.payload)
  await put(`${url}/${packets[1]!.z32}`, packets[1]!.payload)
  // updating the first makes the second the least recently updated
  const newer = homeserverPacket(keys[0]!, { host: 'localhost', port: 2 }, packets[0]!.timestamp + 1n)
  t.equal((await put(`${url}/${newer.z32}`, newer.payload)).status, 204)
  await put(`${url}/${packets[2]!.z32}`, packets[2]!.payload)
  t.equal(relay.store.size, 2)
  t.equal((await fetch(`${url}/${packets[0]!.z32}`)).status, 200)
  t.equal((await fetch(`${url}/${packets[1]!.z32}`)).status, 404, 'evicted')
  t.equal((await fetch(`${url}/${packets[2]!.z32}`)).status, 200)
})

t.test('publisher publishes at start and republishes', async (t) => {
  const { url } = await relayAt(t)
  const key = secret()
  const { z32, publicKey } = keypairFromSecret(key)
  const watched = watchedLog()
  const publisher = startPublisher({ secretKey: key, port: 6286, relays: [url + '/'], intervalMs: 50, log: watched.log })
  t.teardown(() => publisher.stop())
  t.equal(await publisher.publishedOnce, true)
  const first = parsePayload(publicKey, new Uint8Array(await (await fetch(`${url}/${z32}`)).arrayBuffer()))
  await until(() => watched.published.some((p) => p.timestamp > first.timestamp), 'a republish', 10_000)
  const later = parsePayload(publicKey, new Uint8Array(await (await fetch(`${url}/${z32}`)).arrayBuffer()))
  t.ok(later.timestamp > first.timestamp, 're-signed with a later timestamp')
})

t.test('publisher retries until the relay comes up', async (t) => {
  // the relay is reached through a front that drops every connection until it is told the
  // relay is up: a port that is down, then up, without giving the port away in between
  const { url: relayUrl } = await relayAt(t, 10)
  let up = false
  const open = new Set<net.Socket>()
  const front = net.createServer((socket) => {
    if (!up) return void socket.destroy()
    const back = net.connect(Number(new URL(relayUrl).port), '127.0.0.1')
    for (const s of [socket, back]) {
      open.add(s)
      s.on('close', () => open.delete(s))
    }
    socket.pipe(back).pipe(socket)
    socket.on('error', () => back.destroy())
    back.on('error', () => socket.destroy())
  })
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => {
    front.close(r)
    for (const s of open) s.destroy() // kept-alive connections would hold the close
  }))
  const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`

  const watched = watchedLog()
  const key = secret()
  const publisher = startPublisher({ secretKey: key, port: 6286, relays: [url], retryMs: 20, maxRetryMs: 50, log: watched.log })
  t.teardown(() => publisher.stop())
  await until(() => watched.failed.length >= 2, 'two failed attempts while the relay is down', 10_000)
  t.equal(watched.published.length, 0, 'nothing published while it is down')
  up = true
  t.equal(await publisher.publishedOnce, true)
  t.equal((await fetch(`${url}/${keypairFromSecret(key).z32}`)).status, 200)
})

t.test('publisher overtakes a newer packet a relay already holds', async (t) => {
  const { url } = await relayAt(t)
  const key = secret()
  const { z32, publicKey } = keypairFromSecret(key)
  const future = homeserverPacket(key, { host: 'localhost', port: 1 }, BigInt(Date.now() + 3_600_000) * 1000n)
  await put(`${url}/${z32}`, future.payload)
  const publisher = startPublisher({ secretKey: key, port: 6286, relays: [url], retryMs: 10, log: quiet })
  t.equal(await publisher.publishedOnce, true)
  await publisher.stop()
  const held = parsePayload(publicKey, new Uint8Array(await (await fetch(`${url}/${z32}`)).arrayBuffer()))
  t.ok(held.timestamp > future.timestamp)
})

t.test('outside testnet a homeserver publishes PUBLIC_HOST and its port to PKARR_RELAYS', async (t) => {
  const { url } = await relayAt(t)
  const server = await startTestServer(t, { PKARR_RELAYS: url, PUBLIC_HOST: 'example.test' })
  t.same(server.relays, [url], 'the configured relay, no local one')
  const { z32, publicKey } = server.ctx.keypair
  let res: Response | undefined
  await until(async () => (res = await fetch(`${url}/${z32}`)).status === 200, "the homeserver's packet on the relay", 10_000, () => res?.status)
  // parsePayload checks the signature against the homeserver's key, or throws
  const packet = parsePayload(publicKey, new Uint8Array(await res!.arrayBuffer()))
  const endpoints = apexEndpoints(publicKey, packet)
  t.same(
    endpoints.map((e) => ({ target: e.target, httpPort: e.httpPort })),
    [{ target: 'example.test', httpPort: Number(new URL(server.url).port) }],
    'one HTTPS record: the public host, and the port the server listens on',
  )
})

t.test('stop before any success settles publishedOnce as false', async (t) => {
  const publisher = startPublisher({ secretKey: secret(), port: 1, relays: ['http://127.0.0.1:9'], retryMs: 10_000, log: quiet })
  await publisher.stop()
  t.equal(await publisher.publishedOnce, false)
})

t.test('the official client resolves the published homeserver', async (t) => {
  const { Client, Keypair, Pubky, PublicKey } = await import('@synonymdev/pubky')
  const { url } = await relayAt(t)
  const requests: { path?: string; host?: string }[] = []
  const homeserver = http.createServer((req, res) => {
    requests.push({ path: req.url, host: req.headers['pubky-host'] as string | undefined })
    res.end('ok')
  })
  await new Promise<void>((r) => homeserver.listen(0, '127.0.0.1', r))
  t.teardown(() => homeserver.close())
  const port = (homeserver.address() as AddressInfo).port

  const key = secret()
  const hs = keypairFromSecret(key).z32
  const publisher = startPublisher({ secretKey: key, port, relays: [url], log: quiet })
  t.teardown(() => publisher.stop())
  await publisher.publishedOnce

  // the client reads the HTTPS record: target localhost, then the port from SvcParam 65280
  const client = new Client({ pkarr: { relays: [url] } })
  const res = await client.fetch(`https://${hs}/probe`)
  t.equal(await res.text(), 'ok')
  t.same(requests[0], { path: '/probe', host: hs })

  // a user's _pubky record points at the homeserver key; the chain resolves through it
  const pubky = Pubky.withClient(client)
  const user = Keypair.random()
  await pubky.signer(user).pkdns.publishHomeserverForce(PublicKey.from(hs))
  t.equal((await pubky.getHomeserverOf(user.publicKey))?.z32(), hs)
  await client.fetch(`https://_pubky.${user.publicKey.z32()}/pub/file.txt`)
  t.same(requests[1], { path: '/pub/file.txt', host: user.publicKey.z32() })
})

t.test("a flood of packets evicts no pinned key (the homeserver's own, its users'), and PUTs are rate-limited per address", async (t) => {
  const keys = Array.from({ length: 6 }, secret)
  const packets = keys.map((k) => homeserverPacket(k, { host: 'localhost', port: 1 }))
  const own = packets[0]!.z32
  const relay = createPkarrRelay({ maxEntries: 2, putsPerMinute: 5, pinned: async (key) => key === own })
  const url = await relay.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => relay.close())
  const statuses: number[] = []
  for (const p of packets) statuses.push((await put(`${url}/${p.z32}`, p.payload)).status)
  t.same(statuses, [204, 204, 204, 204, 204, 429], 'the sixth PUT within a minute is refused')
  t.equal((await fetch(`${url}/${own}`)).status, 200, 'the pinned key outlived four newer packets')
  t.equal((await fetch(`${url}/${packets[1]!.z32}`)).status, 404, 'an unpinned one did not')
  t.equal((await fetch(`${url}/${packets[4]!.z32}`)).status, 200, 'the newest stays')
})
