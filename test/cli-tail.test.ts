import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { newUser, startTestServer, tempDir } from './helpers/server.js'
import { AckedWrites } from './helpers/acked-writes.js'
import { runCli, startCli } from './helpers/cli.js'
import { closedPortUrl } from './helpers/closed-port.js'
import { until } from './helpers/until.js'
import { idOf } from 'hearth-homeserver-client/id'

const tail = (args: string[]) => runCli(['tail', ...args])
const jsonLines = (text: string) => text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)

/** The public events of acknowledged writes, shaped as `tail --json` prints them. */
function publicLog(acked: AckedWrites): Record<string, unknown>[] {
  return acked.events.filter((e) => e.path.startsWith('/pub/')).map((e) => ({ seq: String(e.seq), type: e.type, user: e.user, path: e.path }))
}

const pick = (o: Record<string, unknown>) => ({ seq: o.seq, type: o.type, user: o.user, path: o.path })

t.test('--json: one JSON object per line, exactly the log', async (t) => {
  const server = await startTestServer(t)
  const [a, b] = [await newUser(server), await newUser(server)]
  const acked = new AckedWrites()
  await acked.put(a, '/pub/app/one.txt', 'hello world!')
  await acked.put(a, '/priv/hidden.txt', 'private')
  await acked.put(b, '/pub/app/two.json', '{}')
  await acked.delete(a, '/pub/app/one.txt')
  await acked.put(b, '/pub/other/three', 'x')
  const run = await tail(['--url', server.url, '--from', 'start', '--json', '--limit', '4'])
  t.equal(run.code, 0, run.stderr)
  const lines = jsonLines(run.stdout)
  t.equal(lines.length, 4)
  t.same(lines.map(pick), publicLog(acked))
  t.same(Object.keys(lines[0]!), ['id', 'seq', 'type', 'user', 'path', 'uri', 'contentHash', 'size', 'ts'])
  t.equal(lines[0]!.size, 12)
  t.equal(lines[2]!.contentHash, undefined, 'DEL has no hash')

  const filtered = await tail(['--url', server.url, '--from', 'start', '--json', '--limit', '1', `${b.user}/pub/other/*`])
  t.same(jsonLines(filtered.stdout).map((l) => l.path), ['/pub/other/three'])

  const text = await tail(['--url', server.url, '--from', 'start', '--limit', '2'])
  t.equal(text.code, 0, text.stderr)
  const [first, second] = text.stdout.trimEnd().split('\n')
  t.equal(first, `${lines[0]!.id} PUT pubky://${a.user}/pub/app/one.txt  12 B`)
  t.equal(second, `${lines[1]!.id} PUT pubky://${b.user}/pub/app/two.json  2 B`)
  t.equal(text.stderr, '', 'no progress line when stderr is not a terminal')
})

t.test('--cursor-file: each run resumes where the previous one stopped', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  for (let i = 0; i < 8; i++) await a.put(`/pub/f${i}`, `${i}`)
  const file = join(tempDir(t), 'cursor')
  const args = ['--url', server.url, '--json', '--cursor-file', file]
  const one = await tail([...args, '--from', 'start', '--limit', '3'])
  t.equal(one.code, 0, one.stderr)
  t.same(jsonLines(one.stdout).map((l) => l.seq), ['1', '2', '3'])
  t.equal(readFileSync(file, 'utf8').trim(), jsonLines(one.stdout)[2]!.id)
  const two = await tail([...args, '--from', 'start', '--limit', '3'])
  t.same(jsonLines(two.stdout).map((l) => l.seq), ['4', '5', '6'], 'the stored cursor wins over --from')
  const three = await tail([...args, '--limit', '2'])
  t.same(jsonLines(three.stdout).map((l) => l.seq), ['7', '8'])
})

t.test('SIGINT: exits 0 after saving the cursor of the last event printed', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  for (let i = 0; i < 3; i++) await a.put(`/pub/f${i}`, `${i}`)
  const file = join(tempDir(t), 'cursor')
  const running = startCli(['tail', '--url', server.url, '--json', '--from', 'start', '--cursor-file', file])
  const lines = (n: number) => until(() => running.stdout().split('\n').length > n, `${n} lines printed`, 30_000, running.stdout)
  await lines(3)
  await a.put('/pub/live.txt', 'live')
  await lines(4)
  running.child.kill('SIGINT')
  const run = await running.done
  t.equal(run.code, 0, run.stderr)
  const printed = jsonLines(run.stdout)
  t.same(printed.map((l) => l.seq), ['1', '2', '3', '4'])
  t.equal(readFileSync(file, 'utf8').trim(), printed[3]!.id)

  await a.put('/pub/after.txt', 'after')
  const next = await tail(['--url', server.url, '--json', '--cursor-file', file, '--limit', '1'])
  t.same(jsonLines(next.stdout).map((l) => l.path), ['/pub/after.txt'])
})

t.test('refusals: a cursor past the head and a bad filter exit 1 with one line; a bad flag exits 2', async (t) => {
  const server = await startTestServer(t)
  const future = await tail(['--url', server.url, '--from', '99'])
  t.equal(future.code, 1)
  t.match(future.stderr, /^hearth: --from 99 is past the head of http:\S+ \(head 0\): no such event yet/)
  t.notMatch(future.stderr, /remove|cursor/, 'says nothing of a cursor file the user never gave')
  const file = join(tempDir(t), 'cursor')
  writeFileSync(file, '00000000000Z0\n')
  const kept = await tail(['--url', server.url, '--cursor-file', file, '--from', 'start'])
  t.equal(kept.code, 1)
  t.match(kept.stderr, `the position 00000000000Z0 kept in ${file} is past the head`)
  t.match(kept.stderr, `remove ${file} to start again`, 'a kept position wins over --from, so removing it is the remedy')
  const bad = await tail(['--url', server.url, 'not-a-filter'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /refused/)
  const usage = await tail(['--url', server.url, '--limit', '0'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /--limit/)
})

t.test('a homeserver that does not answer: tail says it is retrying, and Ctrl-C still stops it', async (t) => {
  const url = await closedPortUrl()
  const running = startCli(['tail', '--url', url])
  await until(() => running.stderr().includes('\n'), 'a retry notice', 30_000, running.stderr)
  const stderr = running.stderr()
  t.match(stderr, new RegExp(`^hearth tail: cannot reach ${url.replaceAll('.', '\\.')} \\(ECONNREFUSED\\); retrying in \\d+\\.\\d s\n`))
  running.child.kill('SIGINT')
  const run = await running.done
  t.equal(run.code, 0, 'Ctrl-C ends the wait')
  t.equal(run.stdout, '')
})

t.test('--snapshot: the files as they are, marked, in key order; SYNCED; then the events', async (t) => {
  const server = await startTestServer(t)
  const [a, b] = [await newUser(server), await newUser(server)]
  const acked = new AckedWrites()
  await acked.put(a, '/pub/app/one.txt', 'first')
  await acked.put(a, '/pub/app/gone.txt', 'gone')
  await acked.put(b, '/pub/app/two.txt', 'two!')
  await acked.put(a, '/priv/app/hidden.txt', 'private')
  await acked.delete(a, '/pub/app/gone.txt')
  await acked.put(a, '/pub/app/one.txt', 'one, again')
  const head = acked.events.at(-1)!.seq
  const running = startCli(['tail', '--url', server.url, '--snapshot', '--json', '--limit', '1'])
  await until(() => running.stdout().includes('"SYNCED"'), 'the SYNCED line', 30_000, running.stdout)
  const live = await acked.put(b, '/pub/app/three.txt', '3')
  const run = await running.done
  t.equal(run.code, 0, run.stderr)
  const lines = jsonLines(run.stdout)
  const files = [[a.user, '/pub/app/one.txt'], [b.user, '/pub/app/two.txt']].sort(([u1, p1], [u2, p2]) => (u1! + p1! < u2! + p2! ? -1 : 1))
  const last = (user: string, path: string) => acked.events.findLast((e) => e.user === user && e.path === path)!
  t.same(lines.slice(0, 2).map((l) => ({ ...pick(l), snapshot: l.snapshot })),
    files.map(([u, p]) => ({ seq: String(last(u!, p!).seq), type: 'PUT', user: u, path: p, snapshot: true })),
    'each file once, in key order, with the seq of the write that made it what it is')
  t.equal(lines[0]!.size, last(files[0]![0]!, files[0]![1]!).size)
  t.same(lines[2], { type: 'SYNCED', id: idOf(head), seq: String(head), files: 2 })
  t.same(lines.slice(3).map(pick), [{ seq: String(live.seq), type: 'PUT', user: b.user, path: '/pub/app/three.txt' }], 'then the events, as without --snapshot')
  t.equal(lines.length, 4, '--limit counts events only')
  t.notOk('snapshot' in lines[3]!)

  const text = startCli(['tail', '--url', server.url, '--snapshot', '--limit', '1', `${a.user}/*`])
  await until(() => text.stdout().includes(' SYNCED '), 'the SYNCED line', 30_000, text.stdout)
  const four = await acked.put(a, '/pub/four.txt', '4')
  const textRun = await text.done
  t.equal(textRun.code, 0, textRun.stderr)
  const one = last(a.user, '/pub/app/one.txt')
  t.same(textRun.stdout.trimEnd().split('\n'), [
    `${idOf(one.seq)} FILE pubky://${a.user}/pub/app/one.txt  10 B`,
    `${idOf(head + 1)} SYNCED 1 files`,
    `${idOf(four.seq)} PUT pubky://${a.user}/pub/four.txt  1 B`,
  ], 'a file says FILE; SYNCED says how many')
})

t.test('--snapshot with --cursor-file: a run stopped in the snapshot resumes it; a kept position below the floor takes a new one', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  for (let i = 0; i < 5; i++) await a.put(`/pub/s/${i}`, `${i}`)
  const file = join(tempDir(t), 'cursor')
  // where a run that printed two files stopped: the id of the second frame
  const frames = await (await fetch(`${server.url}/subscribe?snapshot=true&live=false`)).text()
  const token = [...frames.matchAll(/^id: (~\S+)$/gm)][1]![1]!
  writeFileSync(file, `${token}\n`)

  const plain = await tail(['--url', server.url, '--cursor-file', file])
  t.equal(plain.code, 1)
  t.match(plain.stderr, `${file} holds a position inside a snapshot: pass --snapshot to finish it`)
  const both = await tail(['--url', server.url, '--snapshot', '--from', 'start'])
  t.equal(both.code, 2)
  t.match(both.stderr, /--snapshot and --from/)

  const running = startCli(['tail', '--url', server.url, '--snapshot', '--json', '--cursor-file', file])
  await until(() => running.stdout().includes('"SYNCED"'), 'the SYNCED line', 30_000, running.stdout)
  running.child.kill('SIGINT')
  const rest = await running.done
  t.equal(rest.code, 0, rest.stderr)
  const lines = jsonLines(rest.stdout)
  t.same(lines.map((l) => l.path ?? l.type), ['/pub/s/2', '/pub/s/3', '/pub/s/4', 'SYNCED'], 'the files after the kept position, then SYNCED')
  t.equal(readFileSync(file, 'utf8').trim(), lines[3]!.id, 'after SYNCED, the cursor file holds its id')

  // away while files go and the log is pruned past the kept position
  await a.delete('/pub/s/0')
  await a.put('/pub/s/5', '5')
  await a.put('/pub/s/6', '6')
  await server.ctx.events.prune(server.ctx.events.head)
  const again = startCli(['tail', '--url', server.url, '--snapshot', '--json', '--cursor-file', file])
  await until(() => again.stdout().includes('"SYNCED"'), 'the SYNCED line of a new snapshot', 30_000, again.stdout)
  again.child.kill('SIGINT')
  const resnap = await again.done
  t.equal(resnap.code, 0, resnap.stderr)
  t.same(jsonLines(resnap.stdout).map((l) => l.path ?? l.type), ['/pub/s/1', '/pub/s/2', '/pub/s/3', '/pub/s/4', '/pub/s/5', '/pub/s/6', 'SYNCED'])
  t.match(resnap.stderr, /^hearth tail: the homeserver pruned events after \d+ and before \d+; taking a new snapshot\n/)
})
