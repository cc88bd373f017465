import t from 'tap'
import pino from 'pino'
import { Writable } from 'node:stream'
import type { FastifyBaseLogger } from 'fastify'
import { buildConfig } from '../src/config/config.js'
import { startServer } from '../src/server.js'
import { tempDir, newUser } from './helpers/server.js'
import { RawStream } from './helpers/feed.js'
import { alive, ChildServer } from './helpers/child-server.js'
import { until } from './helpers/until.js'

interface Line {
  level: number
  msg: string
  method?: string
  route?: string
  status?: number
  ms?: number
  user?: string
  stream?: boolean
}

t.test('one info line per request: route, status, duration, user; never a cookie or token', async (t) => {
  const lines: Line[] = []
  let text = ''
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString()
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Line)
      done()
    },
  })
  const logger = pino({ level: 'info', base: undefined }, sink) as unknown as FastifyBaseLogger
  const config = buildConfig({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: tempDir(t), SIGNUP_MODE: 'token', ADMIN_PASSWORD: 'admin-secret' })
  const server = await startServer(config, logger)
  t.teardown(() => server.close())
  const requests = () => lines.filter((l) => l.msg === 'request' || l.msg === 'stream ended')

  const tokenRes = await fetch(`${server.url}/admin/generate_signup_token`, { headers: { 'x-admin-password': 'admin-secret' } })
  const signupToken = await tokenRes.text()
  const user = await newUser({ url: server.url }, '/:rw').catch(() => undefined)
  t.equal(user, undefined, 'token mode refuses a signup without a token')
  const { HomeserverClient } = await import('hearth-homeserver-client')
  const { randomKeypair } = await import('../src/auth/keys.js')
  const client = new HomeserverClient(server.url, randomKeypair())
  await client.signup({ signupToken })
  await client.put('/priv/secret-name.txt', 'x')
  await client.get('/priv/secret-name.txt')
  await fetch(`${server.url}/pub/nothing.txt?pubky-host=${client.user}`).then((r) => r.arrayBuffer())
  const stream = await RawStream.open(`${server.url}/subscribe/${client.user}/*?lastSeq=0&live=false`)
  await stream.all()
  const other = await newUser({ url: server.url }).catch(() => undefined)
  t.equal(other, undefined)

  await t.resolves(until(() => requests().some((l) => l.stream), 'the line for the stream', 10_000))
  const seen = requests().map((l) => [l.method, l.route, l.status, l.user])
  t.same(seen, [
    ['GET', '/admin/generate_signup_token', 200, undefined],
    ['POST', '/signup', 401, seen[1]![3]],
    ['POST', '/signup', 200, client.user],
    ['PUT', '/priv/*', 201, client.user],
    ['GET', '/priv/*', 200, client.user],
    ['GET', '/pub/*', 404, client.user],
    ['GET', '/subscribe/*', 200, client.user],
    ['POST', '/signup', 401, seen[7]![3]],
  ], 'one line per request, in order, with the route pattern and the user')
  for (const l of requests()) {
    t.equal(l.level, 30, 'at info')
    t.type(l.ms, 'number', 'with its duration in ms')
  }
  t.equal(requests().filter((l) => l.stream).length, 1, 'the stream is logged when it ends')
  t.notOk(text.includes(client.session!), 'no session secret in the log')
  t.notOk(text.includes(signupToken), 'no signup token in the log')
  t.notOk(text.includes('admin-secret'), 'no admin password in the log')
  t.notOk(/cookie/i.test(text), 'no cookie header in the log')
  t.notOk(text.includes('secret-name'), 'no path in the log')
})

t.test('on a terminal, hearth serve says where it listens, its key, its data folder and the viewer', async (t) => {
  const data = tempDir(t)
  const server = await ChildServer.start({ args: ['--port', '0', '--data', data], terminal: true })
  t.teardown(() => server.kill())
  await server.waitForOutput(/Ctrl-C stops it/, 20_000)
  const out = server.output
  const url = /hearth is serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1]
  t.ok(url, 'where it listens')
  const key = JSON.parse(out.split(/\r?\n/).find((l) => l.includes('"hearth is serving"'))!.trim()).publicKey as string
  t.match(out, new RegExp(`homeserver key +${key}`), 'its key')
  t.match(out, new RegExp(`storage +leveldb: ${data.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'its storage: the engine and the data folder, in full')
  t.match(out, new RegExp(`viewer +${url}/\\r?\\n`), 'the viewer')
  const info = await fetch(`${url}/info`).then((r) => r.json() as Promise<{ publicKey: string }>)
  t.equal(info.publicKey, key, 'the key it printed is the one it serves')
  // hearth runs in a session of its own under `script`: killing the terminal must end it too
  const processes = server.processes
  t.ok(processes.length >= 2, 'script, and hearth under it')
  await server.kill()
  t.same(processes.filter(alive), [], 'nothing it ran lives on')
})

t.test('without a terminal, only the JSON lines', async (t) => {
  const server = await ChildServer.start({ args: ['--port', '0', '--data', tempDir(t)] })
  t.teardown(() => server.kill())
  t.equal(server.stderr, '', 'nothing for a person on stderr')
  const out = server.output
  for (const line of out.split('\n').filter(Boolean)) t.doesNotThrow(() => JSON.parse(line), 'a JSON line')
})

