import t from 'tap'
import type { HearthEvent } from '../src/events/event.js'
import { StoredEvent, decodeStored, encodeStored, isCurrentLayout, storedPath, subscribeData } from '../src/events/stored.js'
import { EventFrames } from '../src/feed/frames.js'
import { engineSettings, TEST_ENGINE } from './helpers/engine.js'
import { countOldLevel, countOldPostgres, downgradeLevel, downgradePostgres } from './helpers/old-layout.js'
import { newUser, startTestServer, tempDir } from './helpers/server.js'

/**
 * Events are stored as the feed sends them (src/events/stored.ts): the layout's codec, and on
 * the test engine the upgrade of a log written in the layout of before — whole, or cut short
 * halfway as a crash leaves it — after which every feed replays byte for byte what it did.
 */

const USER = 'c'.repeat(52)
const samples: HearthEvent[] = [
  { seq: 1, type: 'PUT', user: USER, path: '/pub/a.txt', contentHash: 'q83vEjRWeJA=', size: 12, ts: 1_763_790_000_000 },
  { seq: 2, type: 'DEL', user: USER, path: '/pub/a|b|c "quoted" \\ back', ts: 1_763_790_000_001 },
  { seq: 3, type: 'PUT', user: USER, path: '/pub/ünï/😀/x', contentHash: 'AA==', size: 0, ts: 2 },
  { seq: 2 ** 53 - 1, type: 'PUT', user: USER, path: '/pub/r', contentHash: 'h', size: 2 ** 40, ts: 3, homeserver: 'd'.repeat(52), originSeq: 77 },
]

t.test('the stored layout: every field back, and the data JSON the contract gives', async (t) => {
  for (const ev of samples) {
    const text = encodeStored(ev)
    t.ok(isCurrentLayout(text))
    const back = decodeStored(text)
    t.ok(back instanceof StoredEvent)
    t.same({ ...back }, ev, `seq ${ev.seq}: every field back, and no other`)
    t.equal(storedPath(text), ev.path, 'the path, read without decoding the rest')
    const data = JSON.parse(subscribeData(ev)) as Record<string, unknown>
    const expected: Record<string, unknown> = { id: new EventFrames(ev).id, seq: String(ev.seq), type: ev.type, user: ev.user, path: ev.path, uri: `pubky://${ev.user}${ev.path}` }
    if (ev.type === 'PUT') Object.assign(expected, { contentHash: ev.contentHash, size: ev.size })
    expected.ts = ev.ts
    if (ev.homeserver !== undefined) Object.assign(expected, { homeserver: ev.homeserver, originSeq: String(ev.originSeq) })
    t.equal(subscribeData(ev), JSON.stringify(expected), 'the data JSON, key order and all (SPEC §6.3)')
    t.equal(new EventFrames(back).subscribeText, new EventFrames({ ...ev }).subscribeText, 'a stored event frames as the event itself does')
    const old = JSON.stringify(ev)
    t.same(decodeStored(old), ev, 'the layout of before reads too')
    t.equal(storedPath(old), ev.path)
  }
})

/** What every feed replays of the log, anonymously, as raw bytes. */
async function replays(url: string, user: string): Promise<string[]> {
  const paths = [
    '/subscribe?lastSeq=0&live=false',
    `/subscribe?filter=${user}/*&lastSeq=0&live=false`,
    `/subscribe?filter=*/pub/b/*&lastSeq=0&live=false`,
    `/events-stream?user=${user}`,
    `/events-stream?user=${user}&reverse=true`,
    '/events/?cursor=0&limit=1000',
    // the files, each with the seq of its write: given at the upgrade to files written before
    '/subscribe?snapshot=true&live=false',
  ]
  return Promise.all(paths.map(async (p) => (await fetch(url + p)).text()))
}

t.test('a log written in the layout of before replays byte for byte after the upgrade, also when the upgrade was cut short', async (t) => {
  const dir = tempDir(t)
  const { DATABASE_URL: url } = await engineSettings(t, dir)
  const first = await startTestServer(t, { DATA_DIR: dir })
  const alice = await newUser(first)
  const bob = await newUser(first)
  for (const path of ['/pub/a.txt', '/pub/b/one', '/pub/b/ünï 😀', '/pub/b/a|b "q"', '/priv/secret', '/pub/gone']) await alice.put(path, `of ${path}`)
  await alice.delete('/pub/gone')
  await bob.put('/pub/b/two', 'bob')
  await alice.put('/pub/a.txt', 'again')
  const before = await replays(first.url, alice.user)
  t.ok(before[0]!.includes('"path":"/pub/b/a|b \\"q\\""'), 'the replay holds the events')
  await first.close()

  const downgrade = (half: boolean) => (TEST_ENGINE === 'postgres' ? downgradePostgres(t, url!, half) : downgradeLevel(dir, half))
  const countOld = () => (TEST_ENGINE === 'postgres' ? countOldPostgres(t, url!) : countOldLevel(dir))
  for (const half of [false, true]) {
    const rewritten = await downgrade(half)
    t.ok(rewritten > 0 && (await countOld()) > 0, `${half ? 'half' : 'all'} of the log in the layout of before (${rewritten} entries)`)
    const server = await startTestServer(t, { DATA_DIR: dir })
    t.same(await replays(server.url, alice.user), before, 'every feed replays the same bytes')
    await server.close()
    t.equal(await countOld(), 0, 'opened: every event rewritten in the current layout')
  }
})
