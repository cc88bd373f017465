import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as pubky from '@synonymdev/pubky'
import { keypairFromSecret, sign } from '../src/auth/keys.js'
import { formatCapabilities, parseCapabilities, ROOT } from '../src/auth/capabilities.js'
import { encodeSessionInfo } from '../src/auth/session-info.js'
import { signAuthToken, verifyAuthToken } from '../src/auth/token.js'

/**
 * Cross-checks with the official client, @synonymdev/pubky 0.6.0. It verifies tokens with
 * `AuthToken.verify`; it makes them only inside flows, so its tokens are obtained through a
 * pubkyauth flow over a tiny in-process HTTP relay. It parses SessionInfo only inside
 * `Session.restore`, whose first step decodes an exported SessionInfo before any network call.
 */
const secret = new Uint8Array(32).fill(9)
const ours = keypairFromSecret(secret)
const theirs = pubky.Keypair.fromSecret(secret)

t.test('both derive the same public key and z32', async (t) => {
  t.equal(theirs.publicKey.z32(), ours.z32)
})

t.test('the official AuthToken.verify accepts our tokens', async (t) => {
  for (const caps of ['/:rw', '/pub/app/:rw,/pub/x.txt:r', '']) {
    const token = pubky.AuthToken.verify(signAuthToken(ours, caps))
    t.equal(token.publicKey.z32(), ours.z32)
    t.same(token.capabilities, caps === '' ? [] : caps.split(','))
  }
})

t.test('the official verifier also refuses a token signed over [64..]', async (t) => {
  const token = signAuthToken(ours, '/:rw')
  t.ok(pubky.AuthToken.verify(token))
  token.set(sign(token.subarray(64), ours.secretKey), 0)
  t.throws(() => pubky.AuthToken.verify(token))
  t.throws(() => verifyAuthToken(token), { code: 'InvalidToken' })
})

t.test('the official verifier refuses our stale tokens too', async (t) => {
  t.throws(() => pubky.AuthToken.verify(signAuthToken(ours, '/:rw', Date.now() - 600_000)))
})

t.test('we verify tokens the official signer makes', async (t) => {
  const relay = await startRelay()
  t.teardown(() => relay.server.close())
  for (const caps of ['/pub/app/:rw,/pub/x.txt:r', '/:rw'] as const) {
    const flow = pubky.AuthFlow.start(caps, pubky.AuthFlowKind.signin(), relay.url)
    const awaited = flow.awaitToken()
    await pubky.Signer.fromKeypair(theirs).approveAuthRequest(flow.authorizationUrl)
    const bytes = (await awaited).toBytes()
    const token = verifyAuthToken(bytes)
    t.equal(token.user, ours.z32)
    t.equal(formatCapabilities(token.capabilities), caps)
    t.ok(Math.abs(Number(token.timestamp / 1000n) - Date.now()) < 10_000, 'a microsecond timestamp of now')
    const mine = signAuthToken(ours, caps)
    t.same(mine.subarray(64, 75), bytes.subarray(64, 75), 'same namespace and version bytes')
    t.same(mine.subarray(83), bytes.subarray(83), 'same key and capability bytes')
  }
})

t.test('capability text normalises the same way', async (t) => {
  for (const caps of ['/pub/x:wr', '/pub/x:rr', '/:rw,/pub/app/:r', '/pub/x:']) {
    t.equal(formatCapabilities(parseCapabilities(pubky.validateCapabilities(caps))), formatCapabilities(parseCapabilities(caps)))
  }
  t.throws(() => pubky.validateCapabilities('pub/x:r'))
  t.throws(() => parseCapabilities('pub/x:r'))
})

t.test('the official client decodes our SessionInfo', async (t) => {
  // A relay that knows nobody: restore decodes the export, then fails to resolve the user.
  const lookups: string[] = []
  const relay = http.createServer((req, res) => {
    lookups.push(req.url ?? '')
    res.statusCode = 404
    res.end()
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  t.teardown(() => relay.close())
  const client = new pubky.Client({ pkarr: { relays: [`http://127.0.0.1:${(relay.address() as AddressInfo).port}/`] } })
  const restore = async (bytes: Uint8Array): Promise<string> => {
    try {
      await pubky.Session.restore(Buffer.from(bytes).toString('base64'), client)
      return 'restored'
    } catch (err) {
      return `${(err as Error).name}: ${(err as Error).message}`
    }
  }

  const info = encodeSessionInfo({
    publicKey: ours.publicKey,
    createdAt: Date.now() * 1000,
    capabilities: parseCapabilities('/pub/app/:rw,/pub/x.txt:r'),
  })
  const outcome = await restore(info)
  t.notMatch(outcome, /invalid session export/, 'decoded')
  t.match(outcome, /PkarrError/, 'then stopped at resolving the user')
  t.same(lookups, [`/${ours.z32}`], 'and looked up the public key it decoded')

  // controls: the same oracle does report what it cannot decode
  t.match(await restore(info.subarray(0, 40)), /invalid session export/)
  t.match(await restore(Uint8Array.of(1, ...info.subarray(1))), /invalid session export: Unknown version/)
  t.match(await restore(encodeSessionInfo({ publicKey: ours.publicKey, createdAt: 0, capabilities: [ROOT] })), /PkarrError/)
})

interface Relay {
  server: http.Server
  url: string
}

// The http-relay `link` contract the pubkyauth flow uses: a GET waits for the POST on the same path.
async function startRelay(): Promise<Relay> {
  const bodies = new Map<string, Buffer>()
  const waiting = new Map<string, (body: Buffer) => void>()
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const path = req.url ?? ''
    if (req.method === 'POST') {
      const body = Buffer.concat(chunks)
      const waiter = waiting.get(path)
      waiting.delete(path)
      if (waiter === undefined) bodies.set(path, body)
      else waiter(body)
      res.end()
      return
    }
    const send = (body: Buffer): void => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      res.end(body)
    }
    const body = bodies.get(path)
    bodies.delete(path)
    if (body === undefined) waiting.set(path, send)
    else send(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/link/` }
}
