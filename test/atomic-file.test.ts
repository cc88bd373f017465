import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from 'hearth-homeserver-client/atomic-file'
import { tempDir } from './helpers/server.js'

const dist = (module: string) => new URL(`../src/${module}`, import.meta.url).href

/**
 * Runs an ES module under this Node, after `setup` in its shell and under `wrapper`; at most a
 * minute. Without the test runner's preloads (its NODE_OPTIONS, put back on every spawn): they
 * catch signals, SIGXFSZ among them, and die of them.
 */
function node(code: string, { setup = '', wrapper = '' } = {}) {
  const script = `unset NODE_OPTIONS; ${setup} exec ${wrapper} "${process.execPath}" --input-type=module -e "$0"`
  return spawnSync('bash', ['-c', script, code], { encoding: 'utf8', timeout: 60_000 })
}

t.test('a write replaces the whole file and leaves nothing else behind', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'f')
  await writeFileAtomic(file, 'one\n')
  await writeFileAtomic(file, Buffer.from('two\n'), { mode: 0o600 })
  t.equal(readFileSync(file, 'utf8'), 'two\n')
  t.equal(statSync(file).mode & 0o777, 0o600, 'the new file has the mode asked for')
  t.same(readdirSync(dir), ['f'])
})

t.test('a write that fails partway leaves the old file whole and no temporary file', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'f')
  writeFileSync(file, 'old\n')
  // files may grow to 1 KiB only (the signal ignored, a write past it fails): the 64 KiB write
  // fails after its first bytes, with EFBIG
  const run = node(`import { writeFileAtomic } from '${import.meta.resolve('hearth-homeserver-client/atomic-file')}'
    await writeFileAtomic(${JSON.stringify(file)}, 'x'.repeat(65536))`, { setup: "trap '' XFSZ; ulimit -f 1;" })
  t.equal(run.signal, null, "no signal ended it")
  t.equal(run.status, 1, "the write failed")
  t.match(run.stderr, /EFBIG/)
  t.equal(readFileSync(file, 'utf8'), 'old\n', 'the old content, whole')
  t.same(readdirSync(dir), ['f'], 'no temporary file')
})

t.test('exclusive: an existing file is kept, and nothing is left behind', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'key')
  await writeFileAtomic(file, 'first\n', { exclusive: true })
  await t.rejects(writeFileAtomic(file, 'second\n', { exclusive: true }), { code: 'EEXIST' })
  t.equal(readFileSync(file, 'utf8'), 'first\n')
  t.same(readdirSync(dir), ['key'])
})

const traced = spawnSync('strace', ['-f', '-o', '/dev/null', 'true']).status === 0
t.test('the homeserver key, a cursor file and any other are fsynced before the rename, and their folder after', {
  skip: traced ? false : 'strace cannot run here',
}, async (t) => {
  const dir = tempDir(t)
  const trace = join(dir, 'trace')
  const files = { plain: join(dir, 'plain'), key: join(dir, 'data', 'homeserver.key'), cursor: join(dir, 'cursor') }
  const run = node(`
    import { writeFileAtomic } from '${import.meta.resolve('hearth-homeserver-client/atomic-file')}'
    import { LevelStore } from '${dist('kv/level/store.js')}'
    import { FileCursorStore } from '${import.meta.resolve('hearth-homeserver-client/cursor-store')}'
    await writeFileAtomic(${JSON.stringify(files.plain)}, 'x')
    const { store } = await LevelStore.open(${JSON.stringify(join(dir, 'data'))})
    await store.homeserverSecret(() => new Uint8Array(32).fill(7))
    await store.close()
    await new FileCursorStore(${JSON.stringify(files.cursor)}).save('0000000000002')`,
  { wrapper: `strace -f -y -qq -e trace=openat,fsync,fdatasync,rename,renameat,renameat2 -o ${trace}` })
  t.equal(run.status, 0, run.stderr)
  const lines = readFileSync(trace, 'utf8').split('\n')
  const at = (re: RegExp) => lines.findIndex((line) => re.test(line))
  for (const [name, file] of Object.entries(files)) {
    const esc = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    const folder = esc.slice(0, esc.lastIndexOf('/'))
    const tmp = `${esc}\\.\\d+\\.[0-9a-f]+\\.tmp`
    const fileSync = at(new RegExp(`fsync\\(\\d+<${tmp}>`))
    const renamed = at(new RegExp(`rename\\w*\\(.*"${tmp}".*"${esc}"`))
    const folderSync = lines.findIndex((line, i) => i > renamed && new RegExp(`fsync\\(\\d+<${folder}>`).test(line))
    t.ok(fileSync >= 0 && renamed > fileSync, `${name}: the temporary file is fsynced, then renamed`)
    t.ok(folderSync > renamed, `${name}: then its folder is fsynced`)
  }
  t.equal(statSync(files.key).mode & 0o777, 0o600, 'the homeserver key is 0600')
})
