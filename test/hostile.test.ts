import t from 'tap'
import { startTestServer } from './helpers/server.js'
import { hostileWorld, runHostile } from './helpers/hostile-run.js'

// Generated hostile requests (fast-check) against a real server: junk and adversarial paths,
// headers, cookies with other users' secrets, AuthTokens of every broken kind, filters,
// cursors, query strings and bodies, on every route. Every answer must be below 500, leak no
// private name, and have the contract's error shape; the server must keep answering, and the
// victims' files must be exactly as they wrote them. HOSTILE_SEED replays a run.
t.test('hostile input never crashes, never 5xx, never leaks /priv/, always the right error shape', async (t) => {
  const server = await startTestServer(t, { ADMIN_PASSWORD: 'open sesame', MAX_STREAMS_PER_IP: '100000' })
  const world = await hostileWorld(server.url, 'open sesame')
  const seed = Number(process.env.HOSTILE_SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  const { figures, failures } = await runHostile(server.url, world, { requests: 4000, seed })
  t.comment(JSON.stringify(figures))
  t.same(failures, [], `no failures (replay with HOSTILE_SEED=${seed})`)
  t.equal(figures.requests, 4000)
  t.ok(figures.status2xx > 100, 'some requests got through to real work')
  t.ok(figures.status4xx > 1000, 'most were refused')
  t.same(await world.damage(), [], "the victims' files are intact")
  const info = await fetch(`${server.url}/info`)
  t.equal(info.status, 200, 'still serving')
  const { events } = (await info.json()) as { events: { head: string } }
  const log = await server.ctx.events.read(0, 1_000_000)
  t.equal(log.length, Number(events.head), 'the log is still gapless')
  t.ok(log.every((ev, i) => ev.seq === i + 1))
})
