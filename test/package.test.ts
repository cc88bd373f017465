import t from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { tempDir } from './helpers/server.js'
import { ChildServer } from './helpers/child-server.js'

// The package as a user gets it: `npm pack`, installed into an empty folder, run from there
// with nothing of the checkout. The tarball is packed from the dist/ that `npm test` built
// (`--ignore-scripts`: prepack would rebuild dist/ under the other tests' feet).

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

t.test('npm pack installs into an empty folder and runs: hearth --help, hearth serve, the client', async (t) => {
  const work = tempDir(t, 'hearth-pack-')
  const packed = await run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT })
  const [tarball] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[]
  const files = tarball!.files.map((f) => f.path)
  t.ok(files.includes('dist/src/cli/index.js') && files.includes('dist/src/client/index.d.ts'), 'the CLI and the type declarations are in')
  const runs = (f: string) => /^dist\/src\/.*\.(js|d\.ts)$/.test(f) || /^dist\/src\/viewer\/static\/[\w.-]+\.(html|css)$/.test(f)
  const stray = files.filter((f) => !(f === 'package.json' || f === 'README.md' || runs(f)))
  t.ok(files.includes('dist/src/viewer/static/index.html'), 'the viewer is in')
  t.same(stray, [], 'nothing but what runs: no sources, tests, benchmarks or source maps')

  const app = join(work, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, tarball!.filename)], { cwd: app, timeout: 240_000 })
  const installed = JSON.parse(readFileSync(join(app, 'node_modules/hearth-homeserver/package.json'), 'utf8')) as { name: string; private?: boolean }
  t.equal(installed.name, 'hearth-homeserver')
  t.notOk(installed.private, 'publishable')

  const bin = join(app, 'node_modules/.bin/hearth')
  const help = await run(bin, ['--help'], { cwd: app })
  t.match(help.stdout, /^hearth <command> \[options\]/, 'hearth --help')
  t.match(help.stdout, /hearth serve/)

  // hearth serve, from the installed package, answering /info
  const data = join(work, 'data')
  const server = await ChildServer.start({ executable: bin, cwd: app, args: ['--port', '0', '--data', data] })
  t.teardown(() => server.kill())
  const url = server.url
  const info = (await (await fetch(`${url}/info`)).json()) as { publicKey: string; version: string }
  t.match(info.publicKey, /^[a-z0-9]{52}$/, '/info answers')
  t.equal(info.version, JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version, 'with the version of the package')
  t.equal(readFileSync(join(data, 'homeserver.key'), 'utf8').trim().length, 64, 'its data folder is the one given')

  // the follower library, imported by its package name from outside the checkout
  const script = `
    import { randomBytes } from 'node:crypto'
    import { follow, HomeserverClient } from 'hearth-homeserver/client'
    const client = HomeserverClient.fromSecret(process.argv[1], randomBytes(32).toString('hex'))
    await client.signup()
    await client.put('/pub/packaged.txt', 'hello')
    const follower = follow({ url: process.argv[1], filters: [client.user + '/*'], from: 'start', cursorStore: 'memory' })
    for await (const event of follower) {
      console.log(JSON.stringify({ type: event.type, path: event.path, user: event.user === client.user }))
      break
    }
  `
  const followed = await run(process.execPath, ['--input-type=module', '-e', script, url], { cwd: app, timeout: 60_000 })
  t.same(JSON.parse(followed.stdout), { type: 'PUT', path: '/pub/packaged.txt', user: true }, "import { follow } from 'hearth-homeserver/client' works")

  // the type declarations resolve through the exports map
  writeFileSync(join(app, 'check.ts'), `import { follow, type FollowEvent } from 'hearth-homeserver/client'
import type { Server } from 'hearth-homeserver'
const f: typeof follow = follow
const e: FollowEvent | undefined = undefined
const s: Server | undefined = undefined
export { f, e, s }
`)
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
  const typed = await run(process.execPath, [
    tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck',
    '--types', 'node', '--typeRoots', join(ROOT, 'node_modules/@types'), 'check.ts',
  ], { cwd: app }).then(() => '', (err: { stdout: string }) => err.stdout)
  t.equal(typed, '', 'types for hearth-homeserver and hearth-homeserver/client')

  t.equal(await server.stop(), 0, 'and it stops cleanly')
})

t.test('the client entry point imports nothing of the server', async (t) => {
  const dist = join(ROOT, 'dist/src')
  const allowed = [join(dist, 'client'), join(dist, 'shared')]
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const code = readFileSync(file, 'utf8')
    for (const m of code.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.[^'"]+)['"]/g)) {
      const target = resolve(dirname(file), m[1]!)
      if (!allowed.some((dir) => target.startsWith(dir + '/'))) t.fail(`${relative(dist, file)} imports ${relative(dist, target)}`)
      else visit(target)
    }
  }
  visit(join(dist, 'client/index.js'))
  t.ok(seen.size > 5, `${seen.size} modules reached from client/index.js, all in client/ or shared/`)
  t.ok(readdirSync(join(dist, 'client')).length > 0)
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
