import t, { type Test } from 'tap'
import { AckedWrites, type AckedEvent } from './helpers/acked-writes.js'
import { newUser, startTestServer } from './helpers/server.js'
import { openSse } from './helpers/sse.js'
import type { SseFrame } from './helpers/sse-frames.js'
import { until } from './helpers/until.js'

/**
 * `/subscribe?snapshot=true` (SPEC §13), on the test engine: the files its filters cover, then
 * `synced`, then the events after it. The test keeps every acknowledged write, so it knows the
 * files at any position, and checks that a client keeping per path the frame with the highest
 * seq holds exactly those at `synced`, and after it — with writes racing the snapshot, read in
 * one view or (SNAPSHOT_VIEWS=0) a view per page, and across a reconnect mid-snapshot.
 */

interface Applied {
  seq: number
  exists: boolean
  hash?: string
}

/** A client of a snapshot stream: the state it builds, and what it saw. */
class SnapshotClient {
  readonly state = new Map<string, Applied>()
  synced?: { seq: number; files: number; state: Map<string, boolean> }
  lastId?: string
  frames = 0
  resets = 0
  seqsAfterSynced: number[] = []

  apply(f: SseFrame): void {
    if (f.id !== undefined) this.lastId = f.id
    if (f.event === 'reset') {
      this.resets++
      this.state.clear() // the snapshot starts again
      return
    }
    if (f.event === 'synced') {
      const d = JSON.parse(f.data!) as { seq: string; files: number }
      this.synced = { seq: Number(d.seq), files: d.files, state: this.files() }
      return
    }
    if (f.event !== 'PUT' && f.event !== 'DEL') return
    this.frames++
    const d = JSON.parse(f.data!) as { seq: string; user: string; path: string; contentHash?: string; snapshot?: boolean }
    if (this.synced !== undefined) this.seqsAfterSynced.push(Number(d.seq))
    const key = d.user + d.path
    const now = this.state.get(key)
    if (now !== undefined && now.seq >= Number(d.seq)) return
    this.state.set(key, { seq: Number(d.seq), exists: f.event === 'PUT', hash: d.contentHash })
  }

  /** The files this client holds: key → true. */
  files(): Map<string, boolean> {
    const out = new Map<string, boolean>()
    for (const [key, a] of this.state) if (a.exists) out.set(key, true)
    return out
  }
}

/** The files that match `keep` after every acknowledged write up to `seq`. */
function filesAt(writes: readonly AckedEvent[], seq: number, keep: (user: string, path: string) => boolean): Map<string, boolean> {
  const out = new Map<string, boolean>()
  for (const w of writes) {
    if (w.seq > seq || !keep(w.user, w.path)) continue
    if (w.type === 'PUT') out.set(w.user + w.path, true)
    else out.delete(w.user + w.path)
  }
  return new Map([...out].sort())
}

const sorted = (m: Map<string, boolean>) => new Map([...m].sort())

function follow(t: Test, url: string, client: SnapshotClient, headers: Record<string, string> = {}) {
  const conn = openSse(url, headers, (f) => client.apply(f))
  t.teardown(() => conn.close())
  return conn
}

t.test('the files as of one position, then synced, then the events after it; nothing private', async (t) => {
  const server = await startTestServer(t)
  const writes = new AckedWrites()
  const [alice, bob] = await Promise.all([newUser(server), newUser(server)])
  for (const p of ['/pub/a', '/pub/b/1', '/pub/b/2', '/pub/gone', '/priv/secret', '/priv/b/x']) await writes.put(alice, p, `of ${p}`)
  await writes.delete(alice, '/pub/gone')
  await writes.put(alice, '/pub/a', 'again')
  await writes.put(bob, '/pub/b/3', 'bob')
  const head = writes.events.at(-1)!.seq

  const res = await fetch(`${server.url}/subscribe?filter=${alice.user}/*&snapshot=true&live=false`)
  const text = await res.text()
  t.notOk(text.includes('/priv/'), 'an anonymous snapshot holds nothing private')
  const client = new SnapshotClient()
  for (const block of text.split('\n\n')) {
    const f: SseFrame = { raw: block }
    for (const line of block.split('\n')) {
      const [k, ...v] = line.split(': ')
      if (k === 'id' || k === 'event' || k === 'data') f[k] = v.join(': ')
    }
    client.apply(f)
  }
  t.same(client.synced && [client.synced.seq, client.synced.files], [head, 3], 'synced at the head, after her three public files')
  t.same(sorted(client.synced!.state), filesAt(writes.events, head, (u, p) => u === alice.user && p.startsWith('/pub/')), 'the files as they are')
  t.equal(client.state.get(alice.user + '/pub/a')!.seq, writes.events.find((w) => w.path === '/pub/a' && w.size === 5)!.seq, "each with the seq of the write that made it what it is")
  const order = [...text.matchAll(/"path":"([^"]+)"/g)].map((m) => m[1])
  t.same(order, ['/pub/a', '/pub/b/1', '/pub/b/2'], 'in key order')

  const mine = await fetch(`${server.url}/subscribe?filter=${alice.user}/*&snapshot=true&live=false`, { headers: { cookie: `${alice.user}=${alice.session}` } })
  t.match(await mine.text(), /"path":"\/priv\/secret"/, 'her own session sees her private files')

  const folder = await (await fetch(`${server.url}/subscribe?filter=*/pub/b/*&snapshot=true&live=false`)).text()
  const keys = [...folder.matchAll(/"user":"([^"]+)","path":"([^"]+)"/g)].map((m) => m[1]! + m[2]!)
  t.same(keys, [alice.user + '/pub/b/1', alice.user + '/pub/b/2', bob.user + '/pub/b/3'].sort(), 'one folder of every user, in key order')
  t.match(folder, /"files":3/)

  const token = text.split('\n').find((l) => l.startsWith('id: ~'))!.slice(4)
  const bad = await fetch(`${server.url}/subscribe?filter=${alice.user}/*`, { headers: { 'last-event-id': token } })
  t.equal(bad.status, 400, 'a snapshot token on a stream without snapshot is refused')
  const future = await fetch(`${server.url}/subscribe?snapshot=true`, { headers: { 'last-event-id': '~f.999.YQ' } })
  t.same([future.status, ((await future.json()) as { error: string }).error], [400, 'FutureCursor'])
  const forged = await fetch(`${server.url}/subscribe?snapshot=true`, { headers: { 'last-event-id': '~f.1.!!' } })
  t.same([forged.status, ((await forged.json()) as { error: string }).error], [400, 'InvalidCursor'])

  // live after synced
  const live = new SnapshotClient()
  follow(t, `${server.url}/subscribe?filter=${alice.user}/pub/b/*&snapshot=true`, live)
  await until(() => live.synced !== undefined, 'synced')
  const ev = await writes.put(alice, '/pub/b/4', 'live')
  await until(() => live.seqsAfterSynced.includes(ev.seq), 'the live write')
  t.same(live.seqsAfterSynced, [ev.seq], 'then each event after it, once')
})

for (const views of ['4', '0']) {
  t.test(`writes racing the snapshot (SNAPSHOT_VIEWS=${views}), and a reconnect in the middle: the client ends with the server's files at synced, and after`, async (t) => {
    const server = await startTestServer(t, { SNAPSHOT_VIEWS: views })
    const writes = new AckedWrites()
    const users = await Promise.all([newUser(server), newUser(server), newUser(server)])
    const path = (i: number) => `/pub/s/${(i * 7919) % 1000}`
    for (let i = 0; i < 700; i++) await writes.put(users[i % 3]!, path(i), `v${i}`)
    const keep = (_u: string, p: string) => p.startsWith('/pub/s/')
    let writing = true
    let n = 0
    const racing = (async () => {
      while (writing) {
        const u = users[n % 3]!
        const p = path(n++ * 13)
        if (n % 4 === 0) await writes.delete(u, p).catch(() => {})
        else await writes.put(u, p, `r${n}`)
      }
    })()
    // a first connection that leaves after some files, and a second that resumes from its last id
    const first = new SnapshotClient()
    let closing = false
    const conn = openSse(`${server.url}/subscribe?filter=*/pub/s/*&snapshot=true`, {}, (f) => {
      if (closing) return // frames that came in the same read as the 300th
      first.apply(f)
      if (first.frames < 300) return
      closing = true
      conn.close()
    })
    await conn.ended
    const resumed = new SnapshotClient()
    for (const [k, v] of first.state) resumed.state.set(k, v)
    await until(() => writes.events.length > 900, 'writes between the two connections')
    follow(t, `${server.url}/subscribe?filter=*/pub/s/*&snapshot=true`, resumed, { 'last-event-id': first.lastId! })
    t.match(first.lastId, /^~f\./, 'the first connection left in the middle of the files')
    await until(() => resumed.synced !== undefined, 'synced on the second connection', 60_000)
    // a whole snapshot alongside, on one connection
    const whole = new SnapshotClient()
    follow(t, `${server.url}/subscribe?filter=*/pub/s/*&snapshot=true`, whole)
    await until(() => whole.synced !== undefined, 'synced', 60_000)
    writing = false
    await racing
    const head = writes.events.at(-1)!.seq
    for (const [name, c] of [['resumed', resumed], ['whole', whole]] as const) {
      t.same(sorted(c.synced!.state), filesAt(writes.events, c.synced!.seq, keep), `${name}: at synced (${c.synced!.seq}), exactly the files then`)
      await until(() => lastSeq(c) >= head, `${name} at the head`, 30_000, () => lastSeq(c))
      t.same(sorted(c.files()), filesAt(writes.events, head, keep), `${name}: after the last write, exactly the files then`)
    }
  })
}

/** The highest seq a client has applied. */
function lastSeq(c: SnapshotClient): number {
  let most = 0
  for (const a of c.state.values()) most = Math.max(most, a.seq)
  return most
}
