import t from 'tap'
import pino from 'pino'
import { Writable } from 'node:stream'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FastifyBaseLogger } from 'fastify'
import { buildConfig } from '../src/config/config.js'
import { startServer } from '../src/server.js'
import { tempDir, newUser } from './helpers/server.js'
import { RawStream } from './helpers/feed.js'

const CLI = fileURLToPath(new URL('../src/cli/index.js', import.meta.url))

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
  const { HomeserverClient } = await import('../src/client/homeserver.js')
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

  await t.resolves(async () => {
    const deadline = Date.now() + 10_000
    while (!requests().some((l) => l.stream)) {
      if (Date.now() > deadline) throw new Error('no line for the stream')
      await new Promise((r) => setTimeout(r, 20))
    }
  })
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
  // `script` gives the child a real terminal; its output comes back through the pipe.
  const child = spawn('script', ['-qec', `'${process.execPath}' '${CLI}' serve --port 0 --data '${data}'`, '/dev/null'], {
    env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  })
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  })
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner within 20 s:\n${out}`)), 20_000)
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      if (/Ctrl-C stops it/.test(out) && /"hearth is serving"/.test(out)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', () => reject(new Error(`exited:\n${out}`)))
  })
  const url = /hearth is serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1]
  t.ok(url, 'where it listens')
  const key = JSON.parse(out.split(/\r?\n/).find((l) => l.includes('"hearth is serving"'))!.trim()).publicKey as string
  t.match(out, new RegExp(`homeserver key +${key}`), 'its key')
  t.match(out, new RegExp(`storage +leveldb: ${data.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'its storage: the engine and the data folder, in full')
  t.match(out, new RegExp(`viewer +${url}/\\r?\\n`), 'the viewer')
  const info = await fetch(`${url}/info`).then((r) => r.json() as Promise<{ publicKey: string }>)
  t.equal(info.publicKey, key, 'the key it printed is the one it serves')
})

t.test('without a terminal, only the JSON lines', async (t) => {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data', tempDir(t)], {
    env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  let out = ''
  let err = ''
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not serving within 20 s:\n${out}${err}`)), 20_000)
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes('"hearth is serving"')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  for (const line of out.split('\n').filter(Boolean)) t.doesNotThrow(() => JSON.parse(line), 'a JSON line')
  t.equal(err, '', 'nothing for a person on stderr')
})
