import t from 'tap'
import { ChildServer } from './helpers/child-server.js'
import { freshDatabase, requirePostgres } from './helpers/postgres.js'
import { killRounds, relayInfo, wholeLog, type RelayInfo } from './helpers/relay.js'
import { tempDir, type Teardown } from './helpers/server.js'
import { until } from './helpers/until.js'
import { expected, originId, Person, pkarrNet, Subscriber, type PkarrNet } from './helpers/people.js'

/**
 * Two `hearth relay` processes on one PostgreSQL database, following people: one log, each
 * followed filter's cursor shared through the database, whichever process moves it.
 */

/** `n` relays on one fresh database, started one after another (the first makes the schema). */
async function relays(t: Teardown, net: PkarrNet, env: (i: number) => Record<string, string> = () => ({})): Promise<ChildServer[]> {
  const url = await freshDatabase(t)
  const out: ChildServer[] = []
  for (const i of [0, 1]) {
    const relay = await ChildServer.start({
      command: 'relay',
      dataDir: tempDir(t),
      keepPort: true,
      env: { DATABASE_URL: url, PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1', RELAY_RETRY_MAX_MS: '300', KEEPALIVE_MS: '1000', ...env(i) },
    })
    t.teardown(() => relay.kill())
    out.push(relay)
  }
  return out
}

type Origin = Awaited<ReturnType<Person['events']>>

/** Waits until the relay's log holds as many events as these users wrote; the log's origin ids, and each user's events. */
async function logOf(relay: ChildServer, people: readonly Person[]): Promise<{ log: string[]; origin: Origin[] }> {
  const origin = await Promise.all(people.map((p) => p.events()))
  const want = origin.flat().length
  let log: string[] = []
  await until(async () => (log = (await wholeLog(relay.url)).map(originId)).length >= want, `the relay's log to hold all ${want} events`, 60_000, () => log.length)
  return { log, origin }
}

if (await requirePostgres(t)) {
  t.test('two relays on one database following overlapping filters of the same users, writes racing: each event in the log once', async (t) => {
    const net = await pkarrNet(t, 2)
    const [alice, bob] = [new Person(net), new Person(net)]
    await alice.signup(net.homeservers[0]!)
    await bob.signup(net.homeservers[1]!)
    const path = (i: number) => (i % 2 === 0 ? `/pub/p/${i}` : `/pub/q/${i}`)
    for (let i = 0; i < 6; i++) await Promise.all([alice.put(path(i), 'a'), bob.put(path(i), 'b')])
    const [a, b] = (await relays(t, net)) as [ChildServer, ChildServer]

    // each relay follows one user whole and the other's /pub/p/ only: the p events of both are read by both
    let writing = true
    const writers = [alice, bob].map(async (p) => {
      for (let i = 6; writing || i < 40; i++) await p.put(path(i), `${i}`)
    })
    const onA = new Subscriber(() => a.url, [`${alice.user}/*`, `${bob.user}/pub/p/*`])
    const onB = new Subscriber(() => b.url, [`${alice.user}/pub/p/*`, `${bob.user}/*`])
    let info: RelayInfo[] = []
    await until(async () => (info = await Promise.all([a, b].map((r) => relayInfo(r.url)))).every((i) => i.following.homeservers.length === 2),
      'both relays to follow both users', 30_000, () => info.map((i) => i.following))
    writing = false
    await Promise.all(writers)

    const { log, origin } = await logOf(a, [alice, bob])
    t.equal(new Set(log).size, log.length, 'no event twice in the log')
    t.same([...log].sort(), origin.flat().map(originId).sort(), 'every event of both users')
    for (const [name, events] of [['alice', origin[0]!], ['bob', origin[1]!]] as const) {
      // both relays bring the p events, one the q events: each part lands in the user's order
      for (const part of ['/pub/p/', '/pub/q/']) {
        const theirs = events.filter((e) => e.path.startsWith(part)).map(originId)
        t.same(log.filter((id) => theirs.includes(id)), theirs, `${name}'s ${part} events in their order`)
      }
    }
    for (const [name, sub] of [['on A', onA], ['on B', onB]] as const) {
      const want = expected(sub.filters, origin.flat())
      await until(() => sub.events.length >= want.length, `the subscriber ${name} to receive ${want.length} events`, 60_000, () => sub.events.length)
      await sub.close()
      const got = sub.events.map(originId)
      t.equal(new Set(got).size, got.length, `the subscriber ${name}: no event twice`)
      t.same([...got].sort(), [...want].sort(), `the subscriber ${name}: every event it asked for`)
    }
  })

  t.test("a followed filter's cursor moved by one relay is where the other starts; one killed, the other carries on", async (t) => {
    const net = await pkarrNet(t, 1)
    const carol = new Person(net)
    await carol.signup(net.homeservers[0]!)
    // A follows carol for good; B, started before A reads anything, follows nobody yet
    const [a, b] = (await relays(t, net, (i): Record<string, string> => (i === 0 ? { RELAY_FOLLOW: carol.user } : {}))) as [ChildServer, ChildServer]
    for (let i = 0; i < 10; i++) await carol.put(`/pub/c/${i}`, 'c')
    await logOf(a, [carol])
    let info: RelayInfo | undefined
    const streamOf = (i: RelayInfo) => i.following.homeservers[0]?.streams[0]
    await until(async () => Number(streamOf(info = await relayInfo(a.url))?.cursor ?? 0) >= 10, "A's cursor past carol's history", 30_000, () => info?.following)
    const moved = Number(streamOf(info!)!.cursor)
    await a.kill()

    for (let i = 10; i < 15; i++) await carol.put(`/pub/c/${i}`, 'c')
    const onB = new Subscriber(() => b.url, [`${carol.user}/*`])
    t.teardown(() => onB.close())
    await until(async () => streamOf(info = await relayInfo(b.url)) !== undefined, "B's stream to carol's homeserver", 30_000, () => info?.following)
    t.ok(Number(streamOf(info!)!.cursor) >= moved, `B starts where A left the cursor (${streamOf(info!)!.cursor} >= ${moved}), not from the start`)

    // A comes back and follows the same filter as B: both move one cursor; A is killed, again and again
    await a.restart()
    let writing = true
    const writer = (async () => {
      for (let i = 15; writing; i++) await carol.put(`/pub/c/${i}`, 'c')
    })()
    const violations = await killRounds(a, 3)
    writing = false
    await writer
    t.same(violations, [], 'A never died on its own')
    const { log, origin } = await logOf(b, [carol])
    t.same(log, origin[0]!.map(originId), 'every event of carol\'s once, in her order')
    await until(() => onB.events.length >= log.length, 'the subscriber on B to receive them all', 60_000, () => onB.events.length)
    t.same(onB.events.map(originId), log, 'and the subscriber on B received them so')
  })
}
