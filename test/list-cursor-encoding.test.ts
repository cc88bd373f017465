import t from 'tap'
import { newUser, startTestServer } from './helpers/server.js'

// Query values arrive decoded once; a cursor naming a file with `%` in it must not be decoded again.
t.test('a listing cursor naming a file with % in its name', async (t) => {
  const server = await startTestServer(t)
  const a = await newUser(server)
  for (const name of ['100%.txt', '100%25.txt', 'b.txt']) await a.put(`/pub/d/${encodeURIComponent(name)}`, name)
  const all = await a.list('/pub/d/')
  t.same(all.map((u) => u.slice(u.lastIndexOf('/') + 1)), ['100%.txt', '100%25.txt', 'b.txt'])
  const after = await a.list('/pub/d/', `cursor=${encodeURIComponent('100%.txt')}`)
  t.same(after.map((u) => u.slice(u.lastIndexOf('/') + 1)), ['100%25.txt', 'b.txt'])
  const full = await a.list('/pub/d/', `cursor=${encodeURIComponent(all[1]!)}`)
  t.same(full.map((u) => u.slice(u.lastIndexOf('/') + 1)), ['b.txt'])
})
