import t from 'tap'
import { startTestServer } from './helpers/server.js'
import { hostileWorld, runHostile } from './helpers/hostile-run.js'
import { CORPUS_FILE, addToCorpus, fromEntry, fuzzSeed, readCorpus, toEntry } from './helpers/hostile-corpus.js'

// Generated hostile requests (fast-check) against a real server: junk and adversarial paths,
// headers, cookies with other users' secrets, AuthTokens of every broken kind, filters,
// cursors, query strings and bodies, on every route. Every answer must be below 500, leak no
// private name, and have the contract's error shape; the server must keep answering, and the
// victims' files must be exactly as they wrote them. The requests that ever failed come first
// (test/fixtures/hostile-corpus.json); HEARTH_FUZZ_SEED picks the generated ones.
t.test('hostile input never crashes, never 5xx, never leaks /priv/, always the right error shape', async (t) => {
  const server = await startTestServer(t, { ADMIN_PASSWORD: 'open sesame', MAX_STREAMS_PER_IP: '100000' })
  const world = await hostileWorld(server.url, 'open sesame')
  const seed = fuzzSeed()
  const corpus = readCorpus().map((e) => fromEntry(e, world.actors))
  t.comment(`seed ${seed} (HEARTH_FUZZ_SEED), then ${corpus.length} requests of the corpus`)
  t.ok(corpus.length > 0, 'the corpus is read')
  const { figures, failures, failed } = await runHostile(server.url, world, { requests: 4000, seed, corpus })
  if (failed.length > 0) {
    const added = addToCorpus(failed.map((f) => toEntry(f.req, world.actors, f.problem)))
    t.comment(`${added} failing requests added to ${CORPUS_FILE}: commit them with the fix`)
  }
  t.comment(JSON.stringify(figures))
  t.same(failures, [], `no failures (replay with HEARTH_FUZZ_SEED=${seed})`)
  t.equal(figures.requests, corpus.length + 4000)
  t.ok(figures.status2xx > 100, 'some requests got through to real work')
  t.ok(figures.status4xx > 1000, 'most were refused')
  t.same(await world.damage(), [], "the victims' files are intact")
  const info = await fetch(`${server.url}/info`)
  t.equal(info.status, 200, 'still serving')
  const { events } = (await info.json()) as { events: { head: string } }
  const log = (await server.ctx.events.read(0, 1_000_000)).events
  t.equal(log.length, Number(events.head), 'the log is still gapless')
  t.ok(log.every((ev, i) => ev.seq === i + 1))
})

t.test('a corpus entry names the actors, so it replays against the users of a later run', async (t) => {
  const actors = (tag: string) => ({
    alice: { user: `alice-${tag}`, secret: `as-${tag}` }, bob: { user: `bob-${tag}`, secret: `bs-${tag}` },
    carol: { user: `carol-${tag}`, secret: `cs-${tag}`, keypair: undefined as never }, dave: { user: `dave-${tag}`, secret: `ds-${tag}` }, erin: { user: `erin-${tag}`, secret: `es-${tag}` },
    adminPassword: `pw-${tag}`,
  })
  const then = actors('then')
  const now = actors('now')
  const req = {
    transport: 'http' as const, method: 'PUT', target: `/pub/x?pubky-host=${then.alice.user}`,
    headers: [['cookie', `${then.bob.user}=${then.carol.secret}`], ['x-admin-password', then.adminPassword]] as [string, string][],
    body: new Uint8Array([0, 1, 255]),
  }
  const entry = toEntry(req, then, 'why')
  t.notMatch(JSON.stringify(entry), /-then/, 'no value of the run that found it is stored')
  t.same(fromEntry(JSON.parse(JSON.stringify(entry)) as typeof entry, now), {
    ...req, target: `/pub/x?pubky-host=${now.alice.user}`,
    headers: [['cookie', `${now.bob.user}=${now.carol.secret}`], ['x-admin-password', now.adminPassword]],
  })
  t.equal(fuzzSeed({}), fuzzSeed({ HEARTH_FUZZ_SEED: '' }), 'unset: one fixed seed')
  t.equal(fuzzSeed({ HEARTH_FUZZ_SEED: '42' }), 42)
  t.throws(() => fuzzSeed({ HEARTH_FUZZ_SEED: 'soon' }))
})
