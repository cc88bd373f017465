import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startTestServer, tempDir } from './helpers/server.js'
import { ChildServer } from './helpers/child-server.js'
import { CLI_NODE_FLAGS } from './helpers/cli.js'

// The package as a user gets it: `npm pack`, installed into an empty folder, run from there
// with nothing of the checkout. The tarball is packed from the dist/ that `npm test` built
// (`--ignore-scripts`: prepack would rebuild dist/ under the other tests' feet).

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

const CLIENT = join(ROOT, 'packages/client')

/** `npm pack` of the package in `dir` into `work`: the tarball's name and the files it holds. */
async function pack(dir: string, work: string): Promise<{ tarball: string; files: string[] }> {
  const packed = await run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: dir })
  const [out] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[]
  return { tarball: join(work, out!.filename), files: out!.files.map((f) => f.path) }
}

/** An empty app folder with `packages` installed from their tarballs, as a user would. */
async function appWith(work: string, tarballs: string[]): Promise<string> {
  const app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], { cwd: app, timeout: 240_000 })
  return app
}

/** tsc over one file in `app`: its errors, or '' */
async function typeErrors(app: string, file: string, code: string): Promise<string> {
  writeFileSync(join(app, file), code)
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
  return run(process.execPath, [
    tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck',
    '--types', 'node', '--typeRoots', join(ROOT, 'node_modules/@types'), file,
  ], { cwd: app }).then(() => '', (err: { stdout: string }) => err.stdout)
}

t.test('npm pack installs into an empty folder and runs: hearth --help, hearth serve', async (t) => {
  const work = tempDir(t, 'hearth-pack-')
  const server = await pack(ROOT, work)
  const client = await pack(CLIENT, work)
  t.ok(server.files.includes('dist/src/cli/index.js') && server.files.includes('dist/src/server.d.ts'), 'the CLI and the type declarations are in')
  const runs = (f: string) => /^dist\/src\/.*\.(js|d\.ts)$/.test(f) || /^dist\/src\/viewer\/static\/[\w.-]+\.(html|css)$/.test(f)
  const stray = server.files.filter((f) => !(f === 'package.json' || f === 'README.md' || runs(f)))
  t.ok(server.files.includes('dist/src/viewer/static/index.html'), 'the viewer is in')
  t.same(stray, [], 'nothing but what runs: no sources, tests, benchmarks or source maps')
  t.notOk(server.files.some((f) => f.startsWith('dist/src/client/')), 'no copy of the client: the server depends on its package')

  // the server's dependency on the client package is met by the client's tarball beside it
  const app = await appWith(work, [client.tarball, server.tarball])
  const installed = JSON.parse(readFileSync(join(app, 'node_modules/hearth-homeserver/package.json'), 'utf8')) as { name: string; private?: boolean }
  t.equal(installed.name, 'hearth-homeserver')
  t.notOk(installed.private, 'publishable')

  const bin = join(app, 'node_modules/.bin/hearth')
  const help = await run(bin, ['--help'], { cwd: app })
  t.match(help.stdout, /^hearth <command> \[options\]/, 'hearth --help')
  t.match(help.stdout, /hearth serve/)

  // hearth serve, from the installed package, answering /info and serving the viewer's modules
  const data = join(work, 'data')
  const child = await ChildServer.start({ executable: bin, cwd: app, args: ['--port', '0', '--data', data] })
  t.teardown(() => child.kill())
  const info = (await (await fetch(`${child.url}/info`)).json()) as { publicKey: string; version: string }
  t.match(info.publicKey, /^[a-z0-9]{52}$/, '/info answers')
  t.equal(info.version, JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version, 'with the version of the package')
  t.equal(readFileSync(join(data, 'homeserver.key'), 'utf8').trim().length, 64, 'its data folder is the one given')
  // the installed bin runs through its #! line, with the Node flags Hearth runs with
  const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0')
  t.same(argv.slice(1, 1 + CLI_NODE_FLAGS.length), CLI_NODE_FLAGS, `node ${CLI_NODE_FLAGS.join(' ')}`)
  t.ok(CLI_NODE_FLAGS.includes('--max-semi-space-size=16'), "V8's young generation capped at Node 20's size")
  t.match(await (await fetch(`${child.url}/client/id.js`)).text(), /export function idOf/, "the viewer's id codec comes from the client package")

  t.equal(await typeErrors(app, 'check.ts', `import type { Server } from 'hearth-homeserver'
const s: Server | undefined = undefined
export { s }
`), '', 'types for hearth-homeserver')
  t.equal(await child.stop(), 0, 'and it stops cleanly')
})

t.test('the client package installs alone, with three dependencies, and follows a homeserver', async (t) => {
  const work = tempDir(t, 'hearth-client-pack-')
  const client = await pack(CLIENT, work)
  const stray = client.files.filter((f) => !(f === 'package.json' || f === 'README.md' || /^dist\/[\w-]+\.(js|d\.ts)$/.test(f)))
  t.same(stray, [], 'nothing but what runs')
  const manifest = JSON.parse(readFileSync(join(CLIENT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  t.ok(Object.keys(manifest.dependencies).length <= 3, `at most three runtime dependencies: ${Object.keys(manifest.dependencies).join(', ')}`)

  const app = await appWith(work, [client.tarball])
  const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> }
  const packages = Object.keys(lock.packages).filter((p) => p !== '')
  t.ok(packages.length <= 4, `the install is the client and its dependencies, nothing of the server: ${packages.join(', ')}`)
  t.notOk(packages.some((p) => /fastify|level|\/pg$/.test(p)))

  const server = await startTestServer(t)
  const script = `
    import { randomBytes } from 'node:crypto'
    import { follow, HomeserverClient } from 'hearth-homeserver-client'
    const client = await HomeserverClient.fromSecret(process.argv[1], randomBytes(32).toString('hex'))
    await client.signup()
    await client.put('/pub/packaged.txt', 'hello')
    const follower = follow({ url: process.argv[1], filters: [client.user + '/*'], from: 'start', cursorStore: 'memory' })
    for await (const event of follower) {
      console.log(JSON.stringify({ type: event.type, path: event.path, user: event.user === client.user }))
      break
    }
  `
  const followed = await run(process.execPath, ['--input-type=module', '-e', script, server.url], { cwd: app, timeout: 60_000 })
  t.same(JSON.parse(followed.stdout), { type: 'PUT', path: '/pub/packaged.txt', user: true }, "import { follow } from 'hearth-homeserver-client' works")

  t.equal(await typeErrors(app, 'check.ts', `import { follow, type FollowEvent } from 'hearth-homeserver-client'
const f: typeof follow = follow
const e: FollowEvent | undefined = undefined
export { f, e }
`), '', 'types for hearth-homeserver-client')
})

t.test('the client package imports nothing of the server, and the file system only when a file store is used', async (t) => {
  const dist = join(CLIENT, 'dist')
  const allowed = new Set(['eventsource-parser', 'zod', '@noble/ed25519'])
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const code = readFileSync(file, 'utf8')
    // static imports and re-exports, at the start of a line as tsc writes them
    for (const m of code.matchAll(/^(?:import|export)\s(?:[^'";]*?\sfrom\s)?['"]([^'"]+)['"]/gm)) {
      const spec = m[1]!
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec))
      else if (!allowed.has(spec)) t.fail(`${relative(dist, file)} imports ${spec} when it loads`)
    }
  }
  visit(join(dist, 'index.js'))
  t.ok(seen.size > 5, `${seen.size} modules load with the entry point, importing only their three dependencies`)
})

t.test('npm start builds only when dist/ is missing or older than the sources', async (t) => {
  const dir = tempDir(t, 'hearth-start-')
  mkdirSync(join(dir, 'scripts'))
  mkdirSync(join(dir, 'src/cli'), { recursive: true })
  for (const f of ['build-if-stale.mjs', 'finish-build.mjs']) writeFileSync(join(dir, 'scripts', f), readFileSync(join(ROOT, 'scripts', f)))
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { outDir: 'dist', rootDir: '.', module: 'nodenext', types: [] } }))
  writeFileSync(join(dir, 'tsconfig.build.json'), JSON.stringify({ extends: './tsconfig.json', include: ['src'] }))
  writeFileSync(join(dir, 'src/cli/index.ts'), 'export const one = 1\n')
  const prestart = () => run(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: dir })
  const built = join(dir, 'dist/src/cli/index.js')

  t.match((await prestart()).stderr, /dist\/ is missing: building it/, 'a fresh clone: built once, and says so')
  t.equal(readFileSync(built, 'utf8').includes('one = 1'), true)
  t.ok(statSync(built).mode & 0o100, 'its bin is executable, as a linked `hearth` needs')
  const first = statSync(built).mtimeMs
  t.equal((await prestart()).stderr, '', 'built and unchanged: nothing to do')
  t.equal(statSync(built).mtimeMs, first, 'dist/ untouched')

  writeFileSync(join(dir, 'src/cli/index.ts'), 'export const two = 2\n')
  const later = new Date(first + 10_000)
  utimesSync(join(dir, 'src/cli/index.ts'), later, later)
  t.match((await prestart()).stderr, /src\/ changed since the last build: building it/, 'an edited source: rebuilt')
  t.equal(readFileSync(built, 'utf8').includes('two = 2'), true)
})
