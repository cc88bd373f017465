import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { keypairFromSecret } from '../src/auth/keys.js'
import { HomeserverClient, idOf } from 'hearth-homeserver-client'
import { newUser, startTestServer, tempDir } from './helpers/server.js'
import { runCli, type CliOptions, type CliRun as Run } from './helpers/cli.js'
import { closedPortUrl } from './helpers/closed-port.js'

/** Runs `hearth <args>` as a user would, in `cwd`, with HEARTH_URL pointing at `url`. */
function hearth(args: string[], opts: CliOptions & { cwd: string; url?: string }): Promise<Run> {
  return runCli(args, { ...opts, env: { HEARTH_URL: opts.url, ...opts.env } })
}

const mode = (file: string) => statSync(file).mode & 0o777
const userOf = (keyFile: string) => keypairFromSecret(Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex')).z32
const oneLine = (t: Tap, run: Run, pattern: RegExp) => {
  t.equal(run.stderr.trimEnd().split('\n').length, 1, `one line: ${run.stderr.trimEnd()}`)
  t.match(run.stderr, pattern)
}
type Tap = Pick<typeof t, 'equal' | 'match'>

/** A client with the CLI's key, signed in, to set up and check state without the CLI. */
async function sameUser(url: string, keyFile: string): Promise<HomeserverClient> {
  const client = await HomeserverClient.fromSecret(url, readFileSync(keyFile, 'utf8').trim())
  await client.signin()
  return client
}

t.test('keygen, signup, put: three commands from nothing to a file anyone can curl', async (t) => {
  const server = await startTestServer(t)
  const cwd = tempDir(t)
  const keygen = await hearth(['keygen'], { cwd, url: server.url })
  t.equal(keygen.code, 0, keygen.stderr)
  const key = join(cwd, 'hearth.key')
  t.match(readFileSync(key, 'utf8'), /^[0-9a-f]{64}\n$/)
  t.equal(mode(key), 0o600)
  t.equal(keygen.stdout, userOf(key) + '\n', 'prints the public key of the written secret')

  const signup = await hearth(['signup'], { cwd, url: server.url })
  t.equal(signup.code, 0, signup.stderr)
  t.equal(mode(key + '.session'), 0o600)

  writeFileSync(join(cwd, 'hello.txt'), 'hello, world\n')
  const put = await hearth(['put', '/pub/hello.txt', './hello.txt'], { cwd, url: server.url })
  t.equal(put.code, 0, put.stderr)
  const [address, event] = put.stdout.trimEnd().split(' ')
  t.equal(address, `pubky://${userOf(key)}/pub/hello.txt`, 'prints the address')
  const info = (await (await fetch(`${server.url}/info`)).json()) as { events: { head: string } }
  t.equal(event, idOf(BigInt(info.events.head)), 'and the id of the event the write appended')

  const res = await fetch(`${server.url}/pub/hello.txt`, { headers: { 'pubky-host': userOf(key) } })
  t.equal(res.status, 200)
  t.equal(await res.text(), 'hello, world\n')
})

t.test('keygen refuses to overwrite a key; --force replaces it and drops its session', async (t) => {
  const cwd = tempDir(t)
  const first = await hearth(['keygen', '--out', 'me.key'], { cwd })
  t.equal(first.code, 0)
  const key = join(cwd, 'me.key')
  const secret = readFileSync(key, 'utf8')
  writeFileSync(key + '.session', '{}')

  const again = await hearth(['keygen', '--out', 'me.key'], { cwd })
  t.equal(again.code, 1)
  oneLine(t, again, /already exists.*--force/)
  t.equal(readFileSync(key, 'utf8'), secret, 'the key is untouched')

  const forced = await hearth(['keygen', '--out', 'me.key', '--force'], { cwd })
  t.equal(forced.code, 0)
  t.not(readFileSync(key, 'utf8'), secret)
  t.equal(forced.stdout, userOf(key) + '\n')
  t.equal(mode(key), 0o600)
  t.notOk(existsSync(key + '.session'), 'the old key\'s session is gone')
  const show = await hearth(['keygen', '--show', '--out', 'me.key'], { cwd })
  t.equal(show.stdout, forced.stdout, '--show prints the existing key and writes nothing')
  t.equal(mode(key), 0o600)

  const named = await hearth(['keygen', '--key', 'named.key'], { cwd })
  t.equal(named.code, 0, '--key names the file, as for every other command')
  t.equal(named.stdout, userOf(join(cwd, 'named.key')) + '\n')
  const both = await hearth(['keygen', '--key', 'a.key', '--out', 'b.key'], { cwd })
  t.equal(both.code, 2)
  oneLine(t, both, /--key and --out/)
  t.notOk(existsSync(join(cwd, 'a.key')) || existsSync(join(cwd, 'b.key')), 'neither is written')

  const env = await hearth(['keygen'], { cwd, env: { HEARTH_KEY: join(cwd, 'env.key') } })
  t.equal(env.code, 0)
  t.equal(env.stdout, userOf(join(cwd, 'env.key')) + '\n', 'HEARTH_KEY is the default --out')
})

t.test('put from stdin or a file, get to stdout: bytes round-trip exactly', async (t) => {
  const server = await startTestServer(t)
  const cwd = tempDir(t)
  await hearth(['keygen'], { cwd })
  t.equal((await hearth(['signup'], { cwd, url: server.url })).code, 0)
  const bytes = randomBytes(300_000)

  const dash = await hearth(['put', '/pub/bin/dash', '-'], { cwd, url: server.url, input: bytes })
  t.equal(dash.code, 0, dash.stderr)
  const omitted = await hearth(['put', '/pub/bin/omitted'], { cwd, url: server.url, input: bytes.subarray(0, 10) })
  t.equal(omitted.code, 0, omitted.stderr)
  writeFileSync(join(cwd, 'named.bin'), bytes.subarray(5))
  const folder = await hearth(['put', '/pub/bin/', 'named.bin'], { cwd, url: server.url })
  t.equal(folder.code, 0, folder.stderr)
  t.match(folder.stdout, /\/pub\/bin\/named\.bin \w{13}\n$/, 'a folder path takes the file name')
  writeFileSync(join(cwd, 'empty'), '')
  t.equal((await hearth(['put', '/pub/bin/my file?.txt', 'empty'], { cwd, url: server.url })).code, 0)

  t.same((await hearth(['get', '/pub/bin/dash'], { cwd, url: server.url })).bytes, bytes)
  t.same((await hearth(['get', '/pub/bin/omitted'], { cwd, url: server.url })).bytes, bytes.subarray(0, 10))
  t.same((await hearth(['get', '/pub/bin/named.bin'], { cwd, url: server.url })).bytes, bytes.subarray(5))
  const odd = await hearth(['get', '/pub/bin/my file?.txt'], { cwd, url: server.url })
  t.equal(odd.code, 0, 'names with spaces and ? are encoded')
  t.equal(odd.bytes.length, 0)
})

t.test('ls: --limit, --cursor, --reverse, --shallow', async (t) => {
  const server = await startTestServer(t)
  const cwd = tempDir(t)
  await hearth(['keygen'], { cwd })
  await hearth(['signup'], { cwd, url: server.url })
  const client = await sameUser(server.url, join(cwd, 'hearth.key'))
  const paths = ['/pub/d/a.txt', '/pub/d/b.txt', '/pub/d/sub/c.txt', '/pub/d/z.txt', '/pub/e.txt']
  for (const p of paths) await client.put(p, 'x')
  const uri = (p: string) => `pubky://${client.user}${p}`
  const ls = async (...args: string[]) => {
    const run = await hearth(['ls', ...args], { cwd, url: server.url })
    t.equal(run.code, 0, run.stderr)
    return run.stdout.split('\n').filter((l) => l !== '')
  }

  t.same(await ls(), paths.map(uri), 'default: everything under /pub/')
  t.same(await ls('/pub/d/'), paths.slice(0, 4).map(uri))
  t.same(await ls('/pub/d'), paths.slice(0, 4).map(uri), 'a folder without its trailing /')
  t.same(await ls('/pub/d/', '--limit', '2'), paths.slice(0, 2).map(uri))
  t.same(await ls('/pub/d/', '--cursor', '/pub/d/b.txt'), paths.slice(2, 4).map(uri))
  t.same(await ls('/pub/d/', '--cursor', uri('/pub/d/b.txt'), '--limit', '1'), [uri('/pub/d/sub/c.txt')])
  t.same(await ls('/pub/d/', '--reverse'), paths.slice(0, 4).reverse().map(uri))
  t.same(await ls('/pub/d/', '--shallow'), ['/pub/d/a.txt', '/pub/d/b.txt', '/pub/d/sub/', '/pub/d/z.txt'].map(uri))
  t.same(await ls('/pub/', '--shallow', '--reverse'), ['/pub/e.txt', '/pub/d/'].map(uri))
  t.same(await ls('/pub/nothing/'), [], 'an empty folder prints nothing')
  const folder = await hearth(['get', '/pub/d/'], { cwd, url: server.url })
  t.equal(folder.stdout, paths.slice(0, 4).map(uri).join('\n') + '\n', 'get of a folder: its listing, ended by a newline')
  // a JSON error (here: a URL with a path no route has) is said as its message, not as JSON
  const json = await hearth(['ls'], { cwd, url: `${server.url}/nowhere` })
  t.equal(json.code, 1)
  t.match(json.stderr, /404 Not found\n$/)
  t.notMatch(json.stderr, /[{}]/, 'no JSON on the terminal')
})

t.test('rm deletes; rm or get of an absent file fails with one line', async (t) => {
  const server = await startTestServer(t)
  const cwd = tempDir(t)
  await hearth(['keygen'], { cwd })
  await hearth(['signup'], { cwd, url: server.url })
  t.equal((await hearth(['put', '/pub/gone.txt'], { cwd, url: server.url, input: Buffer.from('x') })).code, 0)
  const rm = await hearth(['rm', '/pub/gone.txt'], { cwd, url: server.url })
  t.equal(rm.code, 0, rm.stderr)
  t.equal(rm.stdout, '')
  const res = await fetch(`${server.url}/pub/gone.txt`, { headers: { 'pubky-host': userOf(join(cwd, 'hearth.key')) } })
  t.equal(res.status, 404)

  const again = await hearth(['rm', '/pub/gone.txt'], { cwd, url: server.url })
  t.equal(again.code, 1)
  oneLine(t, again, /^hearth: rm \/pub\/gone\.txt: 404/)
  const get = await hearth(['get', '/pub/gone.txt'], { cwd, url: server.url })
  t.equal(get.code, 1)
  t.equal(get.stdout, '')
  oneLine(t, get, /^hearth: get \/pub\/gone\.txt: 404/)
  const root = await hearth(['put', '/elsewhere.txt'], { cwd, url: server.url, input: Buffer.from('x') })
  t.equal(root.code, 1)
  oneLine(t, root, /403/)
})

t.test('a stale session signs in again once, keeping its capabilities', async (t) => {
  const server = await startTestServer(t)
  const cwd = tempDir(t)
  const key = join(cwd, 'hearth.key')
  await hearth(['keygen'], { cwd })
  t.equal((await hearth(['signup', '--caps', '/pub/app/:rw'], { cwd, url: server.url })).code, 0)
  const session = () => JSON.parse(readFileSync(key + '.session', 'utf8')) as { cookie: string; capabilities: string }
  const first = session()

  // end the session on the server, as an expiry or a sign-out elsewhere would
  const user = userOf(key)
  const out = await fetch(`${server.url}/session`, { method: 'DELETE', headers: { 'pubky-host': user, cookie: `${user}=${first.cookie}` } })
  t.equal(out.status, 204)

  const put = await hearth(['put', '/pub/app/a.txt'], { cwd, url: server.url, input: Buffer.from('a') })
  t.equal(put.code, 0, put.stderr)
  t.not(session().cookie, first.cookie, 'a new session was saved')
  t.equal(session().capabilities, '/pub/app/:rw', 'with the same capabilities')
  t.equal(mode(key + '.session'), 0o600)

  const outside = await hearth(['put', '/pub/other.txt'], { cwd, url: server.url, input: Buffer.from('a') })
  t.equal(outside.code, 1, 'the renewed session is no wider than the first')
  oneLine(t, outside, /403/)

  // stdin cannot be sent twice: the session is checked before it is read
  writeFileSync(key + '.session', JSON.stringify({ ...session(), cookie: 'NOT0A0REAL0COOKIE' }))
  const piped = await hearth(['put', '/pub/app/b.txt', '-'], { cwd, url: server.url, input: Buffer.from('b') })
  t.equal(piped.code, 0, piped.stderr)
  writeFileSync(key + '.session', 'not json')
  const file = await hearth(['rm', '/pub/app/b.txt'], { cwd, url: server.url })
  t.equal(file.code, 0, 'a damaged session file is replaced')
})

t.test('a key without an account is told to sign up; signup twice is told to sign in', async (t) => {
  const server = await startTestServer(t)
  const cwd = tempDir(t)
  await hearth(['keygen'], { cwd })
  const put = await hearth(['put', '/pub/x.txt'], { cwd, url: server.url, input: Buffer.from('x') })
  t.equal(put.code, 1)
  oneLine(t, put, /no account.*hearth signup/)
  t.equal((await hearth(['signup'], { cwd, url: server.url })).code, 0)
  const twice = await hearth(['signup'], { cwd, url: server.url })
  t.equal(twice.code, 1)
  oneLine(t, twice, /already signed up.*hearth signin/)
  const signin = await hearth(['signin'], { cwd, url: server.url })
  t.equal(signin.code, 0, signin.stderr)
  t.match(signin.stdout, /^signed in /)
})

t.test('signup with a token on a homeserver that requires one', async (t) => {
  const server = await startTestServer(t, { SIGNUP_MODE: 'token', ADMIN_PASSWORD: 'admin' })
  const cwd = tempDir(t)
  await hearth(['keygen'], { cwd })
  const without = await hearth(['signup'], { cwd, url: server.url })
  t.equal(without.code, 1)
  oneLine(t, without, /401.*token/i)
  const token = await (await fetch(`${server.url}/admin/generate_signup_token`, { headers: { 'x-admin-password': 'admin' } })).text()
  const withToken = await hearth(['signup', '--token', token], { cwd, url: server.url })
  t.equal(withToken.code, 0, withToken.stderr)
  t.equal((await hearth(['put', '/pub/x.txt'], { cwd, url: server.url, input: Buffer.from('x') })).code, 0)
})

t.test('--url and --key win over HEARTH_URL and HEARTH_KEY; others\' files by pubky:// address', async (t) => {
  const server = await startTestServer(t)
  const cwd = tempDir(t)
  const dead = await closedPortUrl()
  const env = { HEARTH_KEY: join(cwd, 'env.key') }
  await hearth(['keygen', '--out', 'flag.key'], { cwd })
  const signup = await hearth(['signup', '--key', 'flag.key', '--url', server.url], { cwd, url: dead, env })
  t.equal(signup.code, 0, signup.stderr)
  t.ok(existsSync(join(cwd, 'flag.key.session')))
  t.notOk(existsSync(join(cwd, 'env.key')))

  const other = await newUser(server)
  await other.put('/pub/shared/note.txt', 'from another user')
  const addr = `pubky://${other.user}/pub/shared/note.txt`
  const get = await hearth(['get', addr, '--key', 'flag.key'], { cwd, url: server.url })
  t.equal(get.stdout, 'from another user')
  const ls = await hearth(['ls', `pubky://${other.user}/pub/shared/`, '--key', 'flag.key'], { cwd, url: server.url })
  t.equal(ls.stdout, addr + '\n')

  const unreachable = await hearth(['ls', '--key', 'flag.key'], { cwd, url: dead })
  t.equal(unreachable.code, 1)
  oneLine(t, unreachable, /cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/)
})

t.test('usage errors: one line, status 2', async (t) => {
  const cwd = tempDir(t)
  writeFileSync(join(cwd, 'hearth.key'), 'not a key\n')
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command frobnicate/],
    [['put'], /missing argument/],
    [['put', '/pub/a', 'b', 'c'], /unexpected argument c/],
    [['get', '/pub/a', '--bogus'], /bogus/],
    [['ls', '--limit', 'lots'], /--limit/],
    [['ls', '--url', 'ftp://x'], /--url/],
    [['signup', '--caps', 'pub:rw'], /--caps/],
    [['keygen', 'extra'], /unexpected argument extra/],
    [['put', '/pub/dir/', '-'], /folder/],
    [['get', '/pub/a', '--bogus'], /^hearth get: unknown option --bogus \(/],
    [['ls', '--limit', '5000'], /--limit: expected a number from 1 to 1000, got 5000/],
    [['tail', '--from', '-1'], /--from: expected .* got -1/],
    [['tail', '--from'], /--from needs a value/],
    [['tail', '--cursor-file', '/no-such-folder/pos'], /--cursor-file: cannot write in \/no-such-folder/],
  ]
  // independent runs: side by side, to keep the file quick
  const runs = await Promise.all(cases.map(([args]) => hearth(args, { cwd })))
  cases.forEach(([args, pattern], i) => {
    t.equal(runs[i]!.code, 2, args.join(' '))
    oneLine(t, runs[i]!, pattern)
  })
  const badKey = await hearth(['ls'], { cwd, url: await closedPortUrl() })
  t.equal(badKey.code, 1)
  oneLine(t, badKey, /not a hearth key file/)
  const noKey = await hearth(['ls', '--key', 'missing.key'], { cwd })
  oneLine(t, noKey, /no key file.*hearth keygen/)
})

t.test('hearth --version prints the package version', async (t) => {
  const run = await hearth(['--version'], { cwd: tempDir(t) })
  t.equal(run.code, 0)
  t.equal(run.stdout, `${(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version}\n`)
})

t.test('every command has --help', async (t) => {
  const cwd = tempDir(t)
  const top = await hearth(['--help'], { cwd })
  t.equal(top.code, 0)
  const names = [...top.stdout.matchAll(/^ {2}hearth (\S+)/gm)].map((m) => m[1]!)
  for (const name of ['serve', 'keygen', 'signup', 'signin', 'put', 'get', 'rm', 'ls']) t.ok(names.includes(name), `lists ${name}`)
  const runs = await Promise.all(names.map((name) => hearth([name, '--help'], { cwd })))
  names.forEach((name, i) => {
    t.equal(runs[i]!.code, 0, `${name} --help`)
    t.match(runs[i]!.stdout, new RegExp(`^hearth ${name}\\b`))
    t.equal(runs[i]!.stderr, '')
  })
})
