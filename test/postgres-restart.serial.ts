import t from 'tap'
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { promisify } from 'node:util'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import type { ChildServer } from './helpers/child-server.js'
import { requirePostgres } from './helpers/postgres.js'
import { instances } from './helpers/instances.js'
import { liveEvents, readSubscribe } from './helpers/sse.js'

/**
 * SPEC §9 when the database itself goes away: PostgreSQL is restarted while two instances
 * take writes. This restarts the machine's PostgreSQL server, so it runs alone, after every
 * other test (`npm run test:postgres`), never beside them.
 *
 * Every write has its own path, so each one's fate reads off the end state: acknowledged
 * writes are all there; a write that failed or got no answer landed whole (its event and its
 * bytes) or not at all; the log has no gap; a live subscriber saw it all once, in order.
 */
async function postgres(action: 'stop' | 'start'): Promise<void> {
  const version = readdirSync('/etc/postgresql')[0]!
  await promisify(execFile)('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', action], { timeout: 60_000 })
}

const readyz = (url: string) => fetch(`${url}/readyz`).then((r) => r.status, () => 0)

async function until(cond: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

if (await requirePostgres(t)) {
  t.test('PostgreSQL stopped and started under load: instances report not ready, then go on, nothing acknowledged lost, no half writes, no gap', async (t) => {
    const [a, b] = (await instances(t, 2)) as [ChildServer, ChildServer]

    const live = await liveEvents(t, b.url)
    t.equal(live.status, 200)
    const seen = live.events

    const clients = await Promise.all([a, b].map(async (s) => {
      const c = new HomeserverClient(s.url, randomKeypair())
      await c.signup()
      return c
    }))
    const acked = new Map<string, string>()
    const unsure = new Map<string, string>()
    let stop = false
    let n = 0
    const writer = (client: HomeserverClient) =>
      (async () => {
        while (!stop) {
          const path = `/pub/r/${n++}`
          const body = `body of ${path}`
          const res = await client.request('PUT', path, body).then(
            async (r) => (await r.arrayBuffer(), r.status),
            () => 0,
          )
          ;(res === 201 ? acked : unsure).set(`${client.user}${path}`, body)
          if (res !== 201) await new Promise((r) => setTimeout(r, 20)) // no busy loop while the database is away
        }
      })()
    const writers = [...clients, ...clients].map(writer)
    await until(() => acked.size >= 100, 60_000, '100 acknowledged writes before the restart')
    // whatever happens, the machine's PostgreSQL runs again (starting a running one just fails)
    t.teardown(() => postgres('start').catch(() => {}))
    await postgres('stop')
    await until(async () => (await readyz(a.url)) === 503 && (await readyz(b.url)) === 503, 30_000, 'both instances to report not ready')
    t.pass('with the database down, both instances answer /readyz with 503')
    await postgres('start')
    await until(async () => (await readyz(a.url)) === 200 && (await readyz(b.url)) === 200, 60_000, 'both instances to be ready again')
    const at = acked.size
    await until(() => acked.size >= at + 100, 60_000, '100 acknowledged writes after the restart')
    stop = true
    await Promise.all(writers)
    t.comment(`${unsure.size} writes failed or went unanswered around the restart`)

    const log = await readSubscribe(`${a.url}/subscribe?lastSeq=0&live=false`)
    t.equal(log.status, 200)
    const seqs = log.events.map((e) => Number(e.seq))
    t.same(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'the log has no gap')
    const logged = new Map(log.events.map((e) => [`${e.user}${e.path}`, e]))
    t.same([...acked.keys()].filter((k) => !logged.has(k)), [], 'every acknowledged write has its event')
    const half: string[] = []
    for (const [key, body] of unsure) {
      const res = await fetch(`${b.url}/storage/${key}`)
      const text = await res.text()
      const landed = logged.has(key)
      if (landed ? res.status !== 200 || text !== body : res.status !== 404) half.push(`${key}: event ${landed}, GET ${res.status}`)
    }
    t.same(half, [], 'each failed or unanswered write landed whole or not at all')
    const head = seqs.at(-1)!
    await until(() => Number(seen.at(-1)?.seq ?? 0) >= head, 30_000, `the subscriber on b to reach ${head}`)
    t.same(seen.map((e) => Number(e.seq)), seqs, 'the live subscriber got every event once, in order, across the restart')
  })
}
