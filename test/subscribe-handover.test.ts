import t from 'tap'
import type { HearthEvent } from '../src/events/event.js'
import { HttpError, type HomeserverClient } from '../src/client/homeserver.js'
import { startTestServer, newUser } from './helpers/server.js'
import { RawStream, idOf, logEvents, seqOf, writeMany } from './helpers/feed.js'

// The hand-over race: subscribers join at random points of a write storm, each with a cursor
// somewhere behind the head, so their replays end while new events are being announced.
// Each must get exactly the matching events after its cursor: in order, no gap, no repeat.

const USERS = 4
const WRITES_PER_USER = 150
const WRITERS_PER_USER = 3
const SUBSCRIBERS = 40
/** subscribers that connect at once, so their hand-overs overlap */
const BURST = 4

let seed = 0x5eed
const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!

interface Want {
  user: string
  path: string
  prefix: boolean
}
const text = (w: Want) => (w.user === '*' && w.path === '' ? '*' : `${w.user}${w.path}${w.prefix ? '*' : ''}`)
const matches = (w: Want, ev: HearthEvent) =>
  (w.user === '*' || w.user === ev.user) && (w.prefix ? ev.path.startsWith(w.path) : ev.path === w.path)

t.test('subscribers joining mid-storm get exactly their events after their cursor', async (t) => {
  const server = await startTestServer(t, { KEEPALIVE_MS: '100', MAX_STREAMS_PER_IP: '1000' })
  const users = await Promise.all(Array.from({ length: USERS }, () => newUser(server)))
  const folders = ['/pub/f0/', '/pub/f1/', '/pub/f2/', '/pub/f3/']
  const randomFilters = (): Want[] => {
    const u = pick(users).user
    const options: Want[][] = [
      [{ user: '*', path: '', prefix: true }],
      [{ user: u, path: '', prefix: true }],
      [{ user: '*', path: pick(folders), prefix: true }],
      [{ user: u, path: pick(folders), prefix: true }],
      [{ user: u, path: `${pick(folders)}file${Math.floor(rand() * 5)}`, prefix: false }],
      [{ user: u, path: pick(folders), prefix: true }, { user: pick(users).user, path: pick(folders), prefix: true }],
      [],
    ]
    return pick(options)
  }

  // A log to replay first, so far-back cursors replay several pages before handing over.
  await Promise.all(users.map((u) => writeMany(u, WRITES_PER_USER, (i) => `${folders[i % folders.length]}base${i % 7}`, 6)))
  const total = USERS * WRITES_PER_USER
  const joinAt = Array.from({ length: SUBSCRIBERS / BURST }, () => Math.floor(rand() * total * 0.9)).sort((x, y) => x - y)
  const subs: { wants: Want[]; cursor: number; stream: Promise<RawStream> }[] = []
  let completed = 0
  const join = () => {
    const head = server.ctx.events.head
    // Far back, or one long page back (a slow last read widens the hand-over window), or near the head.
    const back = pick([() => rand() * (head + 1), () => 180 + rand() * 70, () => rand() * 10])()
    const cursor = Math.max(0, Math.floor(head - back))
    const wants = randomFilters()
    const form = pick(['lastSeq-id', 'lastSeq-dec', 'cursor-id', 'header'] as const)
    const q = wants.map((w) => `filter=${encodeURIComponent(text(w))}`)
    const headers: Record<string, string> = {}
    if (form === 'lastSeq-id') q.push(`lastSeq=${idOf(cursor)}`)
    else if (form === 'lastSeq-dec') q.push(`lastSeq=${cursor}`)
    else if (form === 'cursor-id') q.push(`cursor=${idOf(cursor)}`)
    else headers['last-event-id'] = idOf(cursor)
    subs.push({ wants, cursor, stream: RawStream.open(`${server.url}/subscribe?${q.join('&')}`, headers) })
  }

  const writer = async (client: HomeserverClient, n: number) => {
    for (let i = 0; i < n; i++) {
      const path = `${pick(folders)}file${Math.floor(rand() * 5)}`
      try {
        if (rand() < 0.15) await client.delete(path)
        else await client.put(path, `${i}`)
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

  const head = server.ctx.events.head
  const log = await logEvents(server)
  t.equal(log.length, head, 'the log is gapless from 1')
  t.equal(subs.length, SUBSCRIBERS)
  // Frames come in seq order, so a frame with an id at or past the head means the stream
  // has dealt with everything; the keepalive sends an id-only frame when nothing matched.
  for (const [i, sub] of subs.entries()) {
    const stream = await sub.stream
    t.teardown(() => stream.close())
    if (stream.response.status !== 200) await stream.all()
    t.equal(stream.response.status, 200, stream.rest || 'open')
    await stream.until((frames) => frames.some((f) => f.id !== undefined && f.id >= idOf(head)))
    const got = stream.events().map(seqOf)
    const wants = sub.wants.length === 0 ? [{ user: '*', path: '', prefix: true }] : sub.wants
    const expected = log.filter((ev) => ev.seq > sub.cursor && wants.some((w) => matches(w, ev))).map((ev) => ev.seq)
    t.same(got, expected, `subscriber ${i}: ${sub.wants.map(text).join(' ') || 'everything'} after ${sub.cursor} (${expected.length} events)`)
  }
  t.ok(subs.some((s) => s.cursor < head / 2), 'some subscribers replayed a long way')
})
