import t from 'tap'
import { until } from './helpers/until.js'
import { randomKeypair } from '../src/auth/keys.js'
import { HomeserverClient } from '../src/client/homeserver.js'
import type { ChildServer } from './helpers/child-server.js'
import { requirePostgres } from './helpers/postgres.js'
import { instances } from './helpers/instances.js'
import { liveEvents, readSubscribe } from './helpers/sse.js'

/**
 * SPEC §9 under faults: one of two instances on one database is SIGKILLed while both take
 * writes. Nothing acknowledged is lost, the log has no gap, and a subscriber on the other
 * instance goes on without a gap or a repeat.
 */
if (await requirePostgres(t)) {
  t.test('kill -9 of one instance during writes: nothing acknowledged lost, no gap, the other instance unaffected', async (t) => {
    const [a, b] = (await instances(t, 2)) as [ChildServer, ChildServer]

    const live = await liveEvents(t, b.url)
    t.equal(live.status, 200)
    const seen = live.events

    const onA = new HomeserverClient(a.url, randomKeypair())
    await onA.signup()
    const onB = new HomeserverClient(b.url, randomKeypair())
    await onB.signup()
    const acked = new Map<string, string>()
    let stop = false
    const writer = (client: HomeserverClient, name: string) =>
      (async () => {
        for (let i = 0; !stop; i++) {
          const path = `/pub/k/${name}-${i}`
          const res = await client.request('PUT', path, `${name} ${i}`).catch(() => undefined)
          if (res === undefined || res.status !== 201) {
            if (client === onA) return // A is gone
            continue
          }
          acked.set(`${client.user}${path}`, `${name} ${i}`)
        }
      })()
    const writers = [writer(onA, 'a0'), writer(onA, 'a1'), writer(onB, 'b0'), writer(onB, 'b1')]
    await until(() => acked.size >= 150, '150 acknowledged writes', 60_000, () => acked.size)
    await a.kill()
    const before = acked.size
    await until(() => acked.size >= before + 50, `50 more acknowledged writes after ${before}`, 60_000, () => acked.size)
    stop = true
    await Promise.all(writers)

    const log = await readSubscribe(`${b.url}/subscribe?lastSeq=0&live=false`)
    t.equal(log.status, 200)
    const seqs = log.events.map((e) => Number(e.seq))
    t.same(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'the log has no gap')
    const stored = new Set(log.events.map((e) => `${e.user}${e.path}`))
    t.same([...acked.keys()].filter((k) => !stored.has(k)), [], 'every acknowledged write has its event')
    for (const [key, body] of [...acked].slice(0, 40)) {
      const user = key.slice(0, 52)
      const res = await fetch(`${b.url}/storage/${key}`)
      t.equal(await res.text(), body, `${key.slice(52)} of ${user.slice(0, 6)}… is stored whole`)
    }
    // the subscriber on B saw everything up to the head, in order, once
    const head = seqs.at(-1)!
    const deadline = Date.now() + 30_000
    while (Number(seen.at(-1)?.seq ?? 0) < head && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    t.same(seen.map((e) => Number(e.seq)), seqs, 'the live subscriber on the surviving instance got every event once, in order')
  })
}
