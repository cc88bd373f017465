import t from 'tap'
import type { HearthEvent } from '../src/events/event.js'
import { HttpError, type HomeserverClient } from 'hearth-homeserver-client'
import { startTestServer, newUser } from './helpers/server.js'
import { RawStream, seqOf, writeMany } from './helpers/feed.js'
import { idOf } from 'hearth-homeserver-client/id'
import type { StreamEvent } from './helpers/sse.js'

// The hand-over race, on both streaming protocols: subscribers join at random points of a
// write storm, each with a cursor somewhere behind the head, so their replays end while new
// events are being announced. Each must get exactly the matching events after its cursor:
// in order, no gap, no repeat.
//
// What each is owed comes from a reference that does not share the code under test: one
// stream opened on the empty log before any write, so it gets every event live, never from a
// replay, and whose events are checked against the acknowledged writes (each once, no other).

const USERS = 4
const WRITES_PER_USER = 150
const WRITERS_PER_USER = 3
const SUBSCRIBERS = 40
/** subscribers that connect at once, so their hand-overs overlap */
const BURST = 4
const FOLDERS = ['/pub/f0/', '/pub/f1/', '/pub/f2/', '/pub/f3/']
/**
 * Written by every user after the storm and named by every subscription: the last event
 * each stream is owed, so a stream that has it has dealt with everything before it.
 */
const SENTINEL = '/pub/end'

let seed = 0x5eed
const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
const file = () => `${pick(FOLDERS)}file${Math.floor(rand() * 5)}`

/** One user (or `*`) and a path, exact or a prefix, wanted after the exclusive cursor `after`. */
interface Want {
  user: string
  path: string
  prefix: boolean
  after: number
}
const matches = (w: Want, ev: Pick<HearthEvent, 'seq' | 'user' | 'path'>) =>
  ev.seq > w.after && (w.user === '*' || w.user === ev.user) && (w.prefix ? ev.path.startsWith(w.path) : ev.path === w.path)

/** A random subscription as one protocol asks for it, and the events it selects. */
interface Ask {
  target: string
  headers: Record<string, string>
  wants: Want[]
  label: string
}

/** `cursor()` draws a cursor behind the head: far back, one long page back, or near it. */
type Asker = (users: readonly string[], cursor: () => number) => Ask

/** `filter=<user|*><path>[*]`, and one cursor in any of its four forms. */
const subscribe: Asker = (users, cursor) => {
  const after = cursor()
  const u = pick(users)
  const chosen: Omit<Want, 'after'>[] = pick([
    [{ user: '*', path: '', prefix: true }],
    [{ user: u, path: '', prefix: true }],
    [{ user: '*', path: pick(FOLDERS), prefix: true }],
    [{ user: u, path: pick(FOLDERS), prefix: true }],
    [{ user: u, path: file(), prefix: false }],
    [{ user: u, path: pick(FOLDERS), prefix: true }, { user: pick(users), path: pick(FOLDERS), prefix: true }],
    [],
  ])
  const text = (w: Omit<Want, 'after'>) => (w.user === '*' && w.path === '' ? '*' : `${w.user}${w.path}${w.prefix ? '*' : ''}`)
  // no filter is everything, the sentinels included
  const filters = chosen.length === 0 ? [] : [...chosen, { user: '*', path: SENTINEL, prefix: false }]
  const q = filters.map((w) => `filter=${encodeURIComponent(text(w))}`)
  const headers: Record<string, string> = {}
  const form = pick(['lastSeq-id', 'lastSeq-dec', 'cursor-id', 'header'] as const)
  if (form === 'lastSeq-id') q.push(`lastSeq=${idOf(after)}`)
  else if (form === 'lastSeq-dec') q.push(`lastSeq=${after}`)
  else if (form === 'cursor-id') q.push(`cursor=${idOf(after)}`)
  else headers['last-event-id'] = idOf(after)
  const wants = (filters.length === 0 ? [{ user: '*', path: '', prefix: true }] : filters).map((w) => ({ ...w, after }))
  return { target: `/subscribe?${q.join('&')}`, headers, wants, label: `${chosen.map(text).join(' ') || 'everything'} after ${after}` }
}

/** `user=<z32>:<cursor>` (each user its own cursor) crossed with `path=` folders and files. */
const eventsStream: Asker = (users, cursor) => {
  const shuffled = [...users].sort(() => rand() - 0.5)
  const chosen = shuffled.slice(0, pick([1, 2, users.length]))
  const paths: { path: string; prefix: boolean }[] = pick([
    [],
    [{ path: pick(FOLDERS), prefix: true }],
    [{ path: pick(FOLDERS), prefix: true }, { path: pick(FOLDERS), prefix: true }],
    [{ path: file(), prefix: false }],
    [{ path: pick(FOLDERS), prefix: true }, { path: file(), prefix: false }],
  ])
  // no path is all of /pub/, the sentinels included
  const named = paths.length === 0 ? [] : [...paths, { path: SENTINEL, prefix: false }]
  const cursors = chosen.map((user) => ({ user, after: cursor() }))
  // a cursor of 13 digits reads as decimal (as upstream's), so only ids with a letter go as ids
  const text = (c: number) => (rand() < 0.5 && /[A-Z]/.test(idOf(c)) ? idOf(c) : String(c))
  const q = [
    ...cursors.map((c) => `user=${c.user}:${text(c.after)}`),
    ...named.map((p) => `path=${encodeURIComponent(p.path)}`),
    'live=true',
  ]
  const wants = cursors.flatMap((c) => (named.length === 0 ? [{ path: '/pub/', prefix: true }] : named).map((p) => ({ ...c, ...p })))
  const label = `${cursors.map((c) => `${c.user.slice(0, 6)}:${c.after}`).join(' ')} ${paths.map((p) => p.path).join(' ') || '/pub/'}`
  return { target: `/events-stream?${q.join('&')}`, headers: {}, wants, label }
}

for (const [protocol, ask] of [['/subscribe', subscribe], ['/events-stream', eventsStream]] as const) {
  t.test(`${protocol}: subscribers joining mid-storm get exactly their events after their cursor`, async (t) => {
    const server = await startTestServer(t, { MAX_STREAMS_PER_IP: '1000' })
    const users = await Promise.all(Array.from({ length: USERS }, () => newUser(server)))
    const keys = users.map((u) => u.user)
    const reference = await RawStream.open(`${server.url}/subscribe?lastSeq=0`)
    t.teardown(() => reference.close())
    /** `<user> <type> <path>` of every acknowledged write, counted */
    const acked = new Map<string, number>()
    const ack = (user: string, type: 'PUT' | 'DEL', path: string) => acked.set(`${user} ${type} ${path}`, (acked.get(`${user} ${type} ${path}`) ?? 0) + 1)

    // A log to replay first, so far-back cursors replay several pages before handing over.
    const basePath = (i: number) => `${FOLDERS[i % FOLDERS.length]}base${i % 7}`
    await Promise.all(users.map((u) => writeMany(u, WRITES_PER_USER, basePath, 6)))
    for (const u of users) for (let i = 0; i < WRITES_PER_USER; i++) ack(u.user, 'PUT', basePath(i))
    const total = USERS * WRITES_PER_USER
    const joinAt = Array.from({ length: SUBSCRIBERS / BURST }, () => Math.floor(rand() * total * 0.9)).sort((x, y) => x - y)
    const subs: { ask: Ask; stream: Promise<RawStream> }[] = []
    let completed = 0
    const join = () => {
      const head = server.ctx.events.head
      // Far back, or one long page back (a slow last read widens the hand-over window), or near the head.
      const cursor = () => Math.max(0, Math.floor(head - pick([() => rand() * (head + 1), () => 180 + rand() * 70, () => rand() * 10])()))
      const a = ask(keys, cursor)
      subs.push({ ask: a, stream: RawStream.open(`${server.url}${a.target}`, a.headers) })
    }

    const writer = async (client: HomeserverClient, n: number) => {
      for (let i = 0; i < n; i++) {
        const path = file()
        try {
          if (rand() < 0.15) {
            await client.delete(path)
            ack(client.user, 'DEL', path)
          } else {
            await client.put(path, `${i}`)
            ack(client.user, 'PUT', path)
          }
        } catch (err) {
          if (!(err instanceof HttpError && err.status === 404)) throw err
        }
        completed++
        while (joinAt.length > 0 && joinAt[0]! <= completed) {
          joinAt.shift()
          for (let j = 0; j < BURST; j++) join()
        }
      }
    }
    await Promise.all(users.flatMap((u) => Array.from({ length: WRITERS_PER_USER }, () => writer(u, WRITES_PER_USER / WRITERS_PER_USER))))
    while (joinAt.length > 0) joinAt.shift() !== undefined && Array.from({ length: BURST }, join)
    for (const u of users) {
      await u.put(SENTINEL, 'end')
      ack(u.user, 'PUT', SENTINEL)
    }

    const head = [...acked.values()].reduce((a, b) => a + b, 0)
    await reference.until((frames) => frames.filter((f) => f.event === 'PUT' || f.event === 'DEL').length >= head)
    const log = reference.events().map((f) => {
      const ev = JSON.parse(f.data!) as StreamEvent
      return { seq: Number(ev.seq), type: ev.type, user: ev.user, path: ev.path }
    })
    t.same(log.map((ev) => ev.seq), Array.from({ length: head }, (_, i) => i + 1), 'the reference has one event per acknowledged write, seqs 1.. with no gap')
    const seen = new Map<string, number>()
    for (const ev of log) seen.set(`${ev.user} ${ev.type} ${ev.path}`, (seen.get(`${ev.user} ${ev.type} ${ev.path}`) ?? 0) + 1)
    t.same(Object.fromEntries([...seen].sort()), Object.fromEntries([...acked].sort()), 'and exactly the acknowledged writes')
    t.equal(subs.length, SUBSCRIBERS)
    for (const [i, sub] of subs.entries()) {
      const stream = await sub.stream
      t.teardown(() => stream.close())
      if (stream.response.status !== 200) await stream.all()
      t.equal(stream.response.status, 200, stream.rest || 'open')
      const expected = log.filter((ev) => sub.ask.wants.some((w) => matches(w, ev))).map((ev) => ev.seq)
      // events come in seq order, so once the last one owed has come, everything has
      const last = expected.at(-1)!
      await stream.until((frames) => frames.some((f) => (f.event === 'PUT' || f.event === 'DEL') && seqOf(f) >= last))
      const got = stream.events().map(seqOf)
      t.same(got, expected, `subscriber ${i}: ${sub.ask.label} (${expected.length} events)`)
    }
    t.ok(subs.some((s) => s.ask.wants.some((w) => w.after < head / 2)), 'some subscribers replayed a long way')
  })
}
