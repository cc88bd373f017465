import t from 'tap'
import http from 'node:http'
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from './helpers/server.js'
import { ChildServer } from './helpers/child-server.js'
import { runCli, type CliRun } from './helpers/cli.js'
import { buildConfig } from '../src/config/config.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { randomKeypair } from '../src/auth/keys.js'
import { ConfigError, readEnv, readFlags } from '../src/config/env.js'

/** Start-up configuration and process life (SPEC §1), through the real CLI as a child process. */

/** Runs the CLI to its end, quiet and on any free port unless `env` says otherwise. */
function run(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runCli(args, { env: { PORT: '0', LOG_LEVEL: 'silent', ...env } })
}

t.test('a second serve on a data folder in use names the folder and the other process', async (t) => {
  const dir = tempDir(t)
  const first = await ChildServer.start({ dataDir: dir })
  t.teardown(() => first.kill())
  const second = await run(['serve'], { DATA_DIR: dir })
  t.equal(second.code, 2)
  const lines = second.stderr.split('\n').filter((l) => l !== '')
  t.equal(lines.length, 1, `one line: ${second.stderr}`)
  t.ok(lines[0]!.includes(dir), `names the folder (${lines[0]})`)
  t.match(lines[0], /held by another process/)
  t.ok(first.running, 'the first one goes on serving')
  t.equal((await fetch(`${first.url}/info`)).status, 200)
})

t.test('bad settings stop start-up with exit status 2 and one line naming the setting', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'a-file')
  writeFileSync(file, 'not a folder')
  const cases: [string, Record<string, string>, string[], string][] = [
    ['PORT=abc', { PORT: 'abc' }, [], 'PORT'],
    ['PORT=70000', { PORT: '70000' }, [], 'PORT'],
    ['PORT=-1', { PORT: '-1' }, [], 'PORT'],
    ['--port abc', {}, ['--port', 'abc'], '--port'],
    ['--port=abc over a good PORT', { PORT: '1' }, ['--port=abc'], '--port'],
    ['--data is a file', {}, ['--data', file], '--data'],
    ['--port with no value', {}, ['--port'], '--port'],
    ['DATA_DIR is a file', { DATA_DIR: file }, [], 'DATA_DIR'],
    ['DATA_DIR below a file', { DATA_DIR: join(file, 'sub') }, [], 'DATA_DIR'],
    ['SIGNUP_MODE=maybe', { SIGNUP_MODE: 'maybe' }, [], 'SIGNUP_MODE'],
    ['MAX_BODY=lots', { MAX_BODY: 'lots' }, [], 'MAX_BODY'],
    ['USER_QUOTA=1XB', { USER_QUOTA: '1XB' }, [], 'USER_QUOTA'],
    ['EVENT_RETENTION=0', { EVENT_RETENTION: '0' }, [], 'EVENT_RETENTION'],
    ['EVENT_RETENTION=soon', { EVENT_RETENTION: 'soon' }, [], 'EVENT_RETENTION'],
    ['EVENT_RETENTION=0d', { EVENT_RETENTION: '0d' }, [], 'EVENT_RETENTION'],
    ['HOMESERVER_SECRET_KEY=short', { HOMESERVER_SECRET_KEY: 'abcd' }, [], 'HOMESERVER_SECRET_KEY'],
    ['MAX_STREAMS_PER_IP=0', { MAX_STREAMS_PER_IP: '0' }, [], 'MAX_STREAMS_PER_IP'],
    ['KEEPALIVE_MS=fast', { KEEPALIVE_MS: 'fast' }, [], 'KEEPALIVE_MS'],
    ['an unknown flag', {}, ['--prot', '1'], '--prot'],
    ['PKARR_RELAYS=not-a-url', { PKARR_RELAYS: 'not-a-url' }, [], 'PKARR_RELAYS'],
    ['--host 999.1.1.1', {}, ['--host', '999.1.1.1'], '--host'],
    ['HOST does not resolve', { HOST: 'no-such-host.invalid' }, [], 'HOST'],
  ]
  // Two at a time: a start-up is mostly module loading, and a crowd of them on two cores
  // could outlast the kill timer of `run` on a busy machine.
  const queue = [...cases]
  await Promise.all([0, 1].map(async () => {
    for (let c = queue.shift(); c !== undefined; c = queue.shift()) await check(c)
  }))
  async function check(c: (typeof cases)[number]): Promise<void> {
    const [what, env, flags, setting] = c
    // a folder each: cases that get as far as opening storage run two at a time
    const res = await run(['serve', ...flags], { DATA_DIR: join(dir, `data-${cases.indexOf(c)}`), ...env })
    t.equal(res.code, 2, `${what}: exit status 2`)
    const lines = res.stderr.split('\n').filter((l) => l !== '')
    t.equal(lines.length, 1, `${what}: one line on stderr (${JSON.stringify(res.stderr)})`)
    t.ok(lines[0]?.includes(setting), `${what}: names ${setting} (${lines[0]})`)
    t.equal(res.stdout, '', `${what}: nothing on stdout`)
  }
})

t.test('an unwritable DATA_DIR is refused', { skip: process.getuid?.() === 0 && 'root can write anywhere' }, async (t) => {
  const dir = tempDir(t)
  const locked = join(dir, 'locked')
  mkdirSync(locked)
  chmodSync(locked, 0o500)
  t.teardown(() => chmodSync(locked, 0o700))
  const res = await run(['serve'], { DATA_DIR: locked })
  t.equal(res.code, 2)
  t.match(res.stderr, /DATA_DIR/)
})

t.test('the config module: flags over environment, defaults, frozen', async (t) => {
  t.same(readEnv({ PORT: '1', HOST: '', OTHER: 'x' }), { PORT: '1' }, 'empty values and unknown names are ignored')
  const { raw, rest } = readFlags(['--port=7', '--host', '0.0.0.0', '--testnet', 'extra'])
  t.same(raw, { PORT: '7', HOST: '0.0.0.0', TESTNET: '1' })
  t.same(rest, ['extra'])
  const config = buildConfig({ ...readEnv({ PORT: '1', DATA_DIR: '/x' }), ...raw })
  t.equal(config.port, 7, 'a flag beats its environment twin')
  t.equal(config.dataDir, '/x')
  t.ok(Object.isFrozen(config))
  const defaults = buildConfig({})
  t.match(defaults, {
    port: 6286, host: '127.0.0.1', dataDir: './data', signupMode: 'open', testnet: false, pkarrRelayPort: 15411,
    maxBody: 100 * 1024 ** 2, userQuota: 1024 ** 3, maxStreamsPerIp: 64, keepaliveMs: 15000,
  })
  t.equal(defaults.adminPassword, undefined)
  t.equal(defaults.retention, undefined, 'keep every event by default')
  t.equal(buildConfig({ MAX_BODY: '1MiB' }).maxBody, 1024 ** 2)
  t.equal(buildConfig({ MAX_BODY: '1048577' }).maxBody, 1024 ** 2 + 1)
  t.same(buildConfig({ EVENT_RETENTION: '1000000' }).retention, { count: 1_000_000 })
  t.same(buildConfig({ EVENT_RETENTION: '30d' }).retention, { ms: 30 * 86_400_000 })
  const err = (() => {
    try {
      buildConfig({ PORT: '1.5' })
    } catch (e) {
      return e
    }
  })()
  t.ok(err instanceof ConfigError && err.setting === 'PORT', 'a ConfigError naming PORT')
})

t.test('hearth --help and hearth serve --help', async (t) => {
  const top = await run(['--help'])
  t.equal(top.code, 0)
  t.match(top.stdout, /hearth <command>/)
  t.match(top.stdout, /serve/)
  const serve = await run(['serve', '--help'])
  t.equal(serve.code, 0)
  t.match(serve.stdout, /hearth serve/)
  for (const flag of ['--port', '--host', '--data', '--signup', '--testnet']) t.match(serve.stdout, flag)
  t.equal(serve.stderr, '')
  const unknown = await run(['nonsense'])
  t.equal(unknown.code, 2, 'an unknown command')
  t.match(unknown.stderr, /unknown command/)
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal} with an open SSE stream: streams end cleanly, exit 0 within 5 s`, async (t) => {
    const server = await ChildServer.start({ dataDir: tempDir(t) })
    t.teardown(() => server.kill())
    const url = server.url
    const user = new HomeserverClient(url, randomKeypair())
    await user.signup()
    await user.put('/pub/before.txt', 'x')
    // Two streams, one per protocol, each with the one event received before the signal.
    const open = (path: string) =>
      new Promise<{ ended: Promise<string> }>((resolve, reject) => {
        http.get(url + path, (res) => {
          t.equal(res.statusCode, 200, path)
          let body = ''
          res.setEncoding('utf8')
          const ended = new Promise<string>((done) => {
            res.on('data', (c: string) => {
              body += c
              if (body.includes('/pub/before.txt')) resolve({ ended })
            })
            res.on('end', () => done('end'))
            res.on('aborted', () => done('aborted'))
            res.on('error', () => done('error'))
          })
          void ended.then((how) => reject(new Error(`${path} ended (${how}) before its event came`)))
        }).on('error', reject)
      })
    const streams = [await open('/subscribe?filter=*&lastSeq=0'), await open(`/events-stream?user=${user.user}&live=true`)]
    const sent = Date.now()
    const stopped = server.stop(signal)
    const outcomes = await Promise.all(streams.map((s) => s.ended))
    t.same(outcomes, ['end', 'end'], 'both streams end with a clean end of stream, not a cut')
    const deadline = new Promise<'late'>((r) => setTimeout(() => r('late'), 5000).unref())
    const result = await Promise.race([stopped, deadline])
    t.not(result, 'late', 'the process is gone within 5 s')
    t.equal(server.exitStatus, 'exit 0', 'exit status 0')
    t.ok(Date.now() - sent < 5000)
  })
}

t.test('METRICS_PORT and --metrics-port: off by default, a port, never the API port', async (t) => {
  t.equal(buildConfig({}).metricsPort, undefined, 'no metrics listener unless asked')
  t.equal(buildConfig({ METRICS_PORT: '9464' }).metricsPort, 9464)
  t.equal(readFlags(['--metrics-port', '9100']).raw.METRICS_PORT, '9100', 'the flag')
  t.equal(readEnv({ METRICS_PORT: '9200' }).METRICS_PORT, '9200', 'the environment')
  const refused = (raw: Record<string, string>) => {
    try {
      buildConfig(raw)
    } catch (err) {
      return err instanceof ConfigError ? `${err.setting}: ${err.message}` : String(err)
    }
    return 'accepted'
  }
  t.match(refused({ METRICS_PORT: 'abc' }), /^METRICS_PORT: /)
  t.match(refused({ METRICS_PORT: '6286' }), /^METRICS_PORT: .*must differ from PORT/)
  const bad = await run(['serve', '--metrics-port', 'abc', '--data', tempDir(t)])
  t.equal(bad.code, 2, 'a bad value stops start-up with status 2')
  t.match(bad.stderr, /invalid setting --metrics-port: /, 'naming the setting as it was given')
})

t.test('a busy port stops start-up with one line naming it, and a failed start leaves no data folder behind', async (t) => {
  const busy = http.createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())))
  const port = String((busy.address() as { port: number }).port)
  const data = join(tempDir(t), 'fresh')
  for (const [what, args, env, setting] of [
    ['--port taken', ['--port', port], {}, '(PORT, --port)'],
    ['PORT taken', [], { PORT: port }, '(PORT, --port)'],
    ['METRICS_PORT taken', [], { METRICS_PORT: port }, '(METRICS_PORT, --metrics-port)'],
  ] as const) {
    const res = await run(['serve', '--data', data, ...args], env)
    t.equal(res.code, 2, `${what}: exit status 2`)
    const lines = res.stderr.split('\n').filter((l) => l !== '')
    t.equal(lines.length, 1, `${what}: one line (${JSON.stringify(res.stderr)})`)
    t.ok(lines[0]?.endsWith(setting), `${what}: names ${setting} (${lines[0]})`)
    t.notOk(existsSync(data), `${what}: the data folder it made is gone again, key and all`)
  }
  // with a database, no data folder is made at all
  const cwd = tempDir(t)
  const res = await runCli(['serve', '--database', 'postgres://127.0.0.1:1/x'], { cwd, env: { PORT: '0', LOG_LEVEL: 'silent' } })
  t.equal(res.code, 2)
  t.same(readdirSync(cwd), [], 'a start with --database that fails leaves the folder it ran in empty')
})

t.test('DATABASE_URL: a database that cannot be reached stops start-up with one line naming it, status 2', async (t) => {
  // port 1 on loopback: nothing listens there, so the connection is refused at once
  const url = 'postgres://hearth:s3cret@127.0.0.1:1/hearth'
  const bad = await run(['serve', '--data', tempDir(t)], { DATABASE_URL: url, PORT: '0' })
  t.equal(bad.code, 2, 'exit status 2')
  const lines = bad.stderr.trim().split('\n')
  t.equal(lines.length, 1, 'one line')
  t.match(lines[0], /^hearth: cannot open the database: .*\(DATABASE_URL, --database\)$/, 'naming the setting')
  t.notMatch(bad.stderr, /s3cret/, 'without the password')
  t.match(refusedSetting({ DATABASE_URL: 'mysql://x' }), /^DATABASE_URL: /, 'a URL that is not postgres:// is a bad setting')
  t.match(refusedSetting({ DATABASE_POLL_MS: '10' }), /^DATABASE_POLL_MS: /, 'a poll of the head more often than every 100 ms is a bad setting')
  t.equal(buildConfig({ DATABASE_POLL_MS: '600000' }).databasePollMs, 600_000)
})

function refusedSetting(raw: Record<string, string>): string {
  try {
    buildConfig(raw)
  } catch (err) {
    return err instanceof ConfigError ? `${err.setting}: ${err.message}` : String(err)
  }
  return 'accepted'
}

t.test('the relay\'s settings for following people: defaults, flags, checks', async (t) => {
  const relay = buildConfig({}).relay
  t.match(relay, {
    follow: [], lingerMs: 60_000, allowPrivateAddresses: false, recordMinMs: 60_000, recordMaxMs: 3_600_000,
    resolvesPerSecond: 50, maxUsers: 10_000, maxFiltersPerSubscriber: 64, streamFilters: 64, streamsPerHomeserver: 16,
  })
  const [a, b] = [randomKeypair().z32, randomKeypair().z32]
  t.same(buildConfig(readFlags(['--follow', a, `--follow=${b}`, '--follow', a]).raw).relay.follow, [a, b], '--follow is repeatable, each user once')
  t.throws(() => buildConfig({ RELAY_FOLLOW: 'alice' }), { message: /RELAY_FOLLOW/ })
  t.throws(() => buildConfig({ RELAY_RECORD_MIN_MS: '5000', RELAY_RECORD_MAX_MS: '1000' }), { message: /RELAY_RECORD_MIN_MS/ })
  t.throws(() => buildConfig({ RELAY_STREAM_FILTERS: '65' }), { message: /RELAY_STREAM_FILTERS/ }, 'a homeserver takes at most 64 filters a stream')
  t.equal(buildConfig({ RELAY_ALLOW_PRIVATE_ADDRESSES: '1' }).relay.allowPrivateAddresses, true)
})
