import t from 'tap'
import type { HearthError } from '../src/errors.js'
import { MAX_SEGMENTS } from '../src/paths.js'
import { newUser, startTestServer } from './helpers/server.js'

// The clash check finds how far the stored tree reaches down a path by a search over its
// folders' file counts (src/events/folder-search.ts), then asks whether the one folder just
// past that is a file. These cases put the end of the tree, and the file in the way, at every
// depth a path can have, and mix a group's own writes in.

/** `/pub/<chain>/s3/s4/…`, `segments` segments in all (1 is `/pub`). */
const deep = (chain: string, segments: number) =>
  segments === 1 ? '/pub' : `/pub/${chain}` + Array.from({ length: segments - 2 }, (_, i) => `/s${i + 3}`).join('')

t.test('a file at any folder above a 64-segment path refuses it, and names that file', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const refusals: string[] = []
  const expected: string[] = []
  for (let at = 2; at < MAX_SEGMENTS; at++) {
    const file = deep(`b${at}`, at)
    await alice.put(file, 'in the way')
    const res = await alice.request('PUT', deep(`b${at}`, MAX_SEGMENTS), 'x')
    refusals.push(`${res.status} ${await res.text()}`)
    expected.push(`409 ${file} is a file`)
  }
  t.same(refusals, expected)
  t.equal(server.ctx.events.head, MAX_SEGMENTS - 2, 'only the files in the way were stored')
})

t.test('where the stored tree ends at any depth with no file in the way, a 64-segment path is stored', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const statuses: number[] = []
  for (let at = 2; at < MAX_SEGMENTS; at++) {
    // a file beside the chain at `at` segments: the folders above it exist, the next does not
    await alice.put(`${deep(`o${at}`, at - 1)}/beside${at}`, 'beside')
    statuses.push((await alice.request('PUT', deep(`o${at}`, MAX_SEGMENTS), 'x')).status)
  }
  t.same(statuses, statuses.map(() => 201))
  const listed = await alice.list(`${deep('o40', MAX_SEGMENTS - 1)}/`)
  t.same(listed.map((url) => url.slice(url.indexOf('/pub/'))), [deep('o40', MAX_SEGMENTS)], 'the deepest file is where it was put')
})

t.test('a file at the deepest level: its folder is no file, nothing goes below it, and deleting it frees the folder', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const file = deep('d', MAX_SEGMENTS)
  const folder = deep('d', MAX_SEGMENTS - 1)
  await alice.put(file, 'deepest')
  const over = await alice.request('PUT', folder, 'x')
  t.same([over.status, await over.text()], [409, `${folder} is a directory`], 'a file over the folder that holds it')
  const top = await alice.request('PUT', deep('d', 2), 'x')
  t.same([top.status, await top.text()], [409, `${deep('d', 2)} is a directory`], 'a file over the top of its chain')
  t.equal((await alice.request('PUT', `${folder}/sibling`, 'x')).status, 201, 'a sibling at the deepest level')
  await alice.delete(file)
  t.equal((await alice.request('PUT', folder, 'x')).status, 409, 'still a folder while one file is left in it')
  await alice.delete(`${folder}/sibling`)
  t.equal((await alice.request('PUT', folder, 'x')).status, 201, 'once empty, the folder may become a file')
  const under = await alice.request('PUT', file, 'x')
  t.same([under.status, await under.text()], [409, `${folder} is a file`], 'and then nothing goes below it')
})

t.test('within one commit group, each write sees the ones before it', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const { writer } = server.ctx
  const groups: number[] = []
  writer.onCommit((g) => groups.push(g.events + g.refused))
  const put = (path: string) =>
    writer.submit({ type: 'PUT', user: alice.user, path, content: { size: 1, hash: 'eA==', type: 'text/plain', inline: Buffer.from('x') } })
  const del = (path: string) => writer.submit({ type: 'DEL', user: alice.user, path })
  const outcome = (p: Promise<unknown>) => p.then(() => 'stored', (err: HearthError) => `${err.code}: ${err.message}`)
  await put('/pub/stored/a/b')
  await put('/pub/stored-file')
  await put('/pub/h/stored')

  // With the writer idle, the first submit commits alone; the rest, submitted in the same
  // tick, wait for it and form the next group together.
  await writer.idle()
  const first = put('/pub/alone')
  const ops = [
    ['PUT /pub/g1/a/b/c', put('/pub/g1/a/b/c')],
    ['PUT /pub/g1/a (a folder the group just made)', put('/pub/g1/a')],
    ['PUT /pub/g2 (a file the group made first)', put('/pub/g2')],
    ['PUT /pub/g2/x/y', put('/pub/g2/x/y')],
    ['PUT /pub/h/a/b (below where the stored tree ends)', put('/pub/h/a/b')],
    ['PUT /pub/h/a/b/c/d', put('/pub/h/a/b/c/d')],
    ['DEL /pub/stored/a/b (the only file in its folder)', del('/pub/stored/a/b')],
    ['PUT /pub/stored/a (the folder the group emptied)', put('/pub/stored/a')],
    ['DEL /pub/stored-file', del('/pub/stored-file')],
    ['PUT /pub/stored-file/below (a file the group deleted)', put('/pub/stored-file/below')],
    ['PUT /pub/g3', put('/pub/g3')],
    ['DEL /pub/g3 (a file the group made)', del('/pub/g3')],
    ['PUT /pub/g3/below (a file the group made, then deleted)', put('/pub/g3/below')],
  ] as const
  await first
  const results = await Promise.all(ops.map(([, p]) => outcome(p)))
  t.same(groups.slice(-2), [1, ops.length], 'the writes after the first committed as one group')
  t.same(Object.fromEntries(ops.map(([what], i) => [what, results[i]])), {
    'PUT /pub/g1/a/b/c': 'stored',
    'PUT /pub/g1/a (a folder the group just made)': 'Conflict: /pub/g1/a is a directory',
    'PUT /pub/g2 (a file the group made first)': 'stored',
    'PUT /pub/g2/x/y': 'Conflict: /pub/g2 is a file',
    'PUT /pub/h/a/b (below where the stored tree ends)': 'stored',
    'PUT /pub/h/a/b/c/d': 'Conflict: /pub/h/a/b is a file',
    'DEL /pub/stored/a/b (the only file in its folder)': 'stored',
    'PUT /pub/stored/a (the folder the group emptied)': 'stored',
    'DEL /pub/stored-file': 'stored',
    'PUT /pub/stored-file/below (a file the group deleted)': 'stored',
    'PUT /pub/g3': 'stored',
    'DEL /pub/g3 (a file the group made)': 'stored',
    'PUT /pub/g3/below (a file the group made, then deleted)': 'stored',
  })
  const listed = (await alice.list('/pub/', 'limit=100')).map((url) => url.slice(url.indexOf('/pub/')))
  t.same(listed.sort(), ['/pub/alone', '/pub/g1/a/b/c', '/pub/g2', '/pub/g3/below', '/pub/h/a/b', '/pub/h/stored', '/pub/stored-file/below', '/pub/stored/a'].sort(), 'what is stored is what the group let through')
})
