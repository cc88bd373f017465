import t from 'tap'
import { ChildServer } from './helpers/child-server.js'
import { engineSettings, TEST_ENGINE } from './helpers/engine.js'
import { killRounds, relayInfo, type RelayInfo } from './helpers/relay.js'
import { tempDir } from './helpers/server.js'
import { until } from './helpers/until.js'
import { expected, originId, Person, pkarrNet, Subscriber } from './helpers/people.js'

// the second engine's run checks the same promise with fewer rounds, to keep `npm test` short
const KILLS = TEST_ENGINE === 'postgres' ? 2 : 4

/** Every filter the relay's upstream streams carry now, by homeserver key. */
function carried(info: RelayInfo): Map<string, string[]> {
  return new Map(info.following.homeservers.map((h) => [h.homeserver, h.streams.flatMap((s) => s.filters).sort()]))
}

t.test('three homeservers, users found through their pkarr records, subscribers coming and going, a move, kill -9: every event of each subscriber\'s users once', async (t) => {
  const net = await pkarrNet(t, 3)
  const [h0, h1, h2] = net.homeservers as [typeof net.homeservers[0], typeof net.homeservers[0], typeof net.homeservers[0]]
  const [alice, bob, carol, dave] = [new Person(net), new Person(net), new Person(net), new Person(net)]
  await alice.signup(h0)
  await bob.signup(h1)
  await carol.signup(h2)
  await dave.signup(h1)
  // history, written before the relay knows of anyone
  for (let i = 0; i < 6; i++) {
    await alice.put(`/pub/app/posts/${i}`, 'a')
    await bob.put(`/pub/app/posts/${i}`, 'b')
    await bob.put(`/pub/app/notes/${i}`, 'b')
    await carol.put(i % 2 === 0 ? `/pub/app/posts/${i}` : `/pub/x/${i}`, 'c')
    await dave.put(`/pub/d/${i}`, 'd')
  }

  const dir = tempDir(t)
  const relay = await ChildServer.start({
    command: 'relay',
    dataDir: dir,
    keepPort: true,
    env: {
      ...(await engineSettings(t, dir)),
      PKARR_RELAYS: net.pkarr,
      RELAY_ALLOW_PRIVATE_ADDRESSES: '1',
      RELAY_LINGER_MS: '300',
      RELAY_RECORD_MIN_MS: '200',
      RELAY_RECORD_MAX_MS: '400',
      RELAY_RETRY_MAX_MS: '300',
      KEEPALIVE_MS: '1000',
    },
  })
  t.teardown(() => relay.kill())
  const info = async () => relayInfo(relay.url)
  let seen: RelayInfo | undefined
  const carries = async (want: Record<string, string[]>, what: string) => {
    const sorted = new Map(Object.entries(want).map(([k, v]) => [k, [...v].sort()]))
    await until(async () => {
      seen = await info()
      const now = carried(seen)
      return now.size === sorted.size && [...sorted].every(([k, v]) => JSON.stringify(now.get(k)) === JSON.stringify(v))
    }, what, 30_000, () => seen && [...carried(seen)])
  }

  // writers on every homeserver for the whole test; dave moves from h1 to h2 partway
  let writing = true
  let moveAt: (() => void) | undefined
  const moved = new Promise<void>((r) => (moveAt = r))
  let moveNow = false
  let firstOnNew = Infinity
  const pace = () => new Promise((r) => setTimeout(r, 15))
  const paths = new Map<Person, (i: number) => string>([
    [alice, (i) => `/pub/app/posts/${i}`],
    [bob, (i) => (i % 2 === 0 ? `/pub/app/posts/${i}` : `/pub/app/notes/${i}`)],
    [carol, (i) => (i % 2 === 0 ? `/pub/app/posts/${i}` : `/pub/x/${i}`)],
    [dave, (i) => `/pub/d/${i}`],
  ])
  const writers = [...paths].map(async ([p, path]) => {
    for (let i = 6; writing; i++) {
      if (p === dave && moveNow && dave.wroteOn.length === 1) {
        await dave.signup(h2)
        moveAt!()
      }
      // now and then a delete of what was written just before (on the homeserver that has it)
      if (i % 7 === 6 && !(p === dave && dave.wroteOn.length === 2 && i - 1 < firstOnNew)) await p.delete(path(i - 1))
      else await p.put(path(i), `${i}`)
      if (p === dave && dave.wroteOn.length === 2 && firstOnNew === Infinity) firstOnNew = i
      await pace()
    }
  })

  const url = () => relay.url
  const s1 = new Subscriber(url, [`${alice.user}/*`, `${bob.user}/pub/app/posts/*`])
  const s3 = new Subscriber(url, [`${carol.user}/pub/app/posts/*`, `${dave.user}/*`])
  const [k0, k1, k2] = [h0, h1, h2].map((h) => h.ctx.keypair.z32) as [string, string, string]
  await carries({ [k0]: [`${alice.user}/*`], [k1]: [`${bob.user}/pub/app/posts/*`, `${dave.user}/*`], [k2]: [`${carol.user}/pub/app/posts/*`] },
    'the streams to carry the first subscribers\' filters, each on its user\'s homeserver')

  // a wider filter of a followed user, and one that overlaps another
  const s2 = new Subscriber(url, [`${bob.user}/*`])
  const s4 = new Subscriber(url, [`${alice.user}/pub/app/*`])
  await carries({
    [k0]: [`${alice.user}/*`, `${alice.user}/pub/app/*`],
    [k1]: [`${bob.user}/*`, `${bob.user}/pub/app/posts/*`, `${dave.user}/*`],
    [k2]: [`${carol.user}/pub/app/posts/*`],
  }, 'the streams to carry the union of four subscribers\' filters')
  const s5 = new Subscriber(url, [`${alice.user}/pub/app/*`])
  t.same(carried(await info()).get(k0), [`${alice.user}/*`, `${alice.user}/pub/app/*`].sort(), 'a subscriber wanting what is followed adds nothing upstream')
  await s4.close()
  await s5.close()
  await carries({
    [k0]: [`${alice.user}/*`],
    [k1]: [`${bob.user}/*`, `${bob.user}/pub/app/posts/*`, `${dave.user}/*`],
    [k2]: [`${carol.user}/pub/app/posts/*`],
  }, 'the filter nobody holds to be dropped upstream after RELAY_LINGER_MS')

  // subscribers coming and going at random, with interests that overlap the others': after each
  // change the streams carry the union of what is held (a dropped filter after its linger)
  const homeOf = new Map([[alice.user, k0], [bob.user, k1], [carol.user, k2], [dave.user, k1]])
  const pool = [
    [`${alice.user}/pub/app/posts/*`],
    [`${bob.user}/pub/app/*`, `${carol.user}/*`],
    [`${carol.user}/pub/app/posts/*`],
    [`${dave.user}/pub/d/*`, `${alice.user}/*`],
  ]
  const live: Subscriber[] = []
  const steps: string[] = []
  const unionNow = (what: string) => {
    const union: Record<string, string[]> = {}
    for (const f of new Set([s1, s2, s3, ...live].flatMap((s) => s.filters))) (union[homeOf.get(f.slice(0, 52))!] ??= []).push(f)
    return carries(union, `the streams to carry the union of the live interests after: ${what}`)
  }
  // the first wants what s3 holds already: its leaving must take nothing from s3
  for (let step = 0; step < 6; step++) {
    if (step > 0 && live.length > 0 && Math.random() < 0.4) {
      const [gone] = live.splice(Math.floor(Math.random() * live.length), 1)
      await gone!.close()
      steps.push(`- ${gone!.filters.join(' ')}`)
    } else {
      const filters = step === 0 ? pool[2]! : pool[Math.floor(Math.random() * pool.length)]!
      live.push(new Subscriber(url, filters))
      steps.push(`+ ${filters.join(' ')}`)
    }
    await unionNow(steps.join(', '))
  }
  for (const sub of live.splice(0)) {
    await sub.close()
    const got = sub.events.map(originId)
    t.equal(new Set(got).size, got.length, `a subscriber that came and went (${sub.filters.join(' ')}): no event twice`)
  }
  await unionNow(`${steps.join(', ')}, and every one of them gone`)

  moveNow = true
  await moved
  await carries({
    [k0]: [`${alice.user}/*`],
    [k1]: [`${bob.user}/*`, `${bob.user}/pub/app/posts/*`],
    [k2]: [`${carol.user}/pub/app/posts/*`, `${dave.user}/*`],
  }, 'dave to be followed on his new homeserver, and no longer on the old one')
  t.equal(seen!.following.moves, 1, '/info counts the move')

  const violations = await killRounds(relay, KILLS, 100)
  writing = false
  await Promise.all(writers)
  t.same(violations, [], 'the relay never died on its own')

  const people = [alice, bob, carol, dave]
  const origin = new Map(await Promise.all(people.map(async (p) => [p.user, await p.events()] as const)))
  for (const [name, sub] of [['s1', s1], ['s2', s2], ['s3', s3]] as const) {
    const users = people.filter((p) => sub.filters.some((f) => f.startsWith(p.user)))
    const want = expected(sub.filters, users.flatMap((p) => origin.get(p.user)!))
    await until(() => sub.events.length >= want.length, `${name} to receive ${want.length} events`, 60_000, () => sub.events.length)
    await sub.close()
    const got = sub.events.map(originId)
    t.equal(new Set(got).size, got.length, `${name}: no event twice`)
    t.same([...got].sort(), [...want].sort(), `${name}: every event of its users it asked for`)
    for (const p of users) {
      // one user's events keep their order; a filter widened later (bob/* after bob's posts)
      // appends the history it adds after what was there, each part in order
      const parts = p === bob && name === 's2' ? [(e: { path: string }) => e.path.startsWith('/pub/app/posts/'), (e: { path: string }) => !e.path.startsWith('/pub/app/posts/')] : [() => true]
      for (const part of parts) {
        const theirs = origin.get(p.user)!.filter(part).map(originId).filter((id) => want.includes(id))
        t.same(got.filter((id) => theirs.includes(id)), theirs, `${name}: ${p === alice ? 'alice' : p === bob ? 'bob' : p === carol ? 'carol' : 'dave'}'s events in their order`)
      }
    }
  }
  t.ok(origin.get(dave.user)!.some((e) => e.homeserver === k1) && origin.get(dave.user)!.some((e) => e.homeserver === k2), 'dave wrote on both homeservers')
})

t.test('a user who moves while the relay is down: what they wrote on the old homeserver before moving still comes, once, in order', async (t) => {
  const net = await pkarrNet(t, 2)
  const [h0, h1] = net.homeservers as [typeof net.homeservers[0], typeof net.homeservers[0]]
  const erin = new Person(net)
  await erin.signup(h0)
  for (let i = 0; i < 3; i++) await erin.put(`/pub/e/${i}`, 'e')
  const dir = tempDir(t)
  const relay = await ChildServer.start({
    command: 'relay',
    dataDir: dir,
    keepPort: true,
    env: { ...(await engineSettings(t, dir)), PKARR_RELAYS: net.pkarr, RELAY_ALLOW_PRIVATE_ADDRESSES: '1', RELAY_RETRY_MAX_MS: '300', KEEPALIVE_MS: '1000' },
  })
  t.teardown(() => relay.kill())
  const sub = new Subscriber(() => relay.url, [`${erin.user}/*`])
  t.teardown(() => sub.close())
  await until(() => sub.events.length === 3, "erin's history")

  await relay.kill()
  // while the relay is down she writes on, then moves and writes on the new homeserver
  for (let i = 3; i < 6; i++) await erin.put(`/pub/e/${i}`, 'e')
  await erin.signup(h1)
  for (let i = 6; i < 9; i++) await erin.put(`/pub/e/${i}`, 'e')
  await relay.restart()

  const want = (await erin.events()).map(originId)
  await until(() => sub.events.length >= want.length, `all ${want.length} of her events`, 60_000, () => sub.events.length)
  t.same(sub.events.map(originId), want, 'each once, the old homeserver\'s first')
  const info = await relayInfo(relay.url)
  t.same(info.following.homeservers.map((h) => [h.homeserver, h.streams.flatMap((s) => s.filters)]), [[h1.ctx.keypair.z32, [`${erin.user}/*`]]], 'and she is followed on the new one only')
})
