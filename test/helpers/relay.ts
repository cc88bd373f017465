import type { Test } from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { buildConfig } from '../../src/config/config.js'
import type { RawConfig } from '../../src/config/env.js'
import { startRelay, type RelayServer } from '../../src/relay/server.js'
import type { relayInfoBody } from '../../src/routes/relay-info.js'
import type { z } from 'zod'
import { parseUpstream } from '../../src/relay/upstream-spec.js'
import { engineSettings } from './engine.js'
import { headOf, tempDir, type Teardown } from './server.js'
import { readSubscribe, type StreamEvent } from './sse.js'
import { until } from './until.js'
import type { ChildServer } from './child-server.js'

export type RelayInfo = z.infer<typeof relayInfoBody>

/**
 * A real `hearth relay` in this process, on the test's engine (a fresh LevelDB folder, or a
 * PostgreSQL database of its own), following `upstreams`; closed after the test. Drops and
 * retries are quick (RELAY_RETRY_MAX_MS 300) so tests of failures do not wait long.
 */
export async function startTestRelay(t: Teardown, upstreams: readonly string[], raw: RawConfig = {}, log?: FastifyBaseLogger): Promise<RelayServer> {
  const dir = raw.DATA_DIR ?? tempDir(t)
  const engine = raw.DATABASE_URL === undefined ? await engineSettings(t, dir) : {}
  const config = buildConfig({
    PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', RELAY_RETRY_MAX_MS: '300', KEEPALIVE_MS: '1000',
    RELAY_UPSTREAMS: upstreams.join(','), ...engine, ...raw, DATA_DIR: dir,
  })
  const relay = await startRelay(config, log)
  t.teardown(() => relay.close())
  return relay
}

export async function relayInfo(url: string): Promise<RelayInfo> {
  const res = await fetch(`${url}/info`)
  if (!res.ok) throw new Error(`${url}/info answered ${res.status}`)
  return (await res.json()) as RelayInfo
}

/** A homeserver as an upstream pinned to its key (`<key>@<url>`), as its operator would give it. */
export function pinned(server: { url: string; ctx: { keypair: { z32: string } } }): string {
  return `${server.ctx.keypair.z32}@${server.url}`
}

/** A homeserver in another process as a pinned upstream, its key read from its `/info`. */
export async function pinnedAt(url: string): Promise<string> {
  const info = (await (await fetch(`${url}/info`)).json()) as { publicKey: string }
  return `${info.publicKey}@${url}`
}

/** Waits until the relay's cursor on each upstream (given by URL, or pinned) reaches that upstream's head now. */
export async function caughtUp(relayUrl: string, upstreams: readonly string[], ms = 60_000): Promise<void> {
  const heads = await Promise.all(upstreams.map((u) => {
    const spec = parseUpstream(u)
    if (spec === undefined || spec.kind === 'key') throw new Error(`caughtUp needs the URL of ${u}`)
    return headOf(spec.url)
  }))
  let info: RelayInfo | undefined
  await until(async () => {
    info = await relayInfo(relayUrl)
    return upstreams.every((u, i) => Number(info!.upstreams.find((x) => x.upstream === u)?.cursor ?? -1) >= heads[i]!)
  }, `the relay to reach the upstream heads ${heads.join(', ')}`, ms, () => info?.upstreams.map((u) => [u.upstream, u.cursor, u.state, u.lastError]))
}

/** A whole log, read with `/subscribe?lastSeq=0&live=false`. */
export async function wholeLog(url: string, filter = ''): Promise<StreamEvent[]> {
  const res = await readSubscribe(`${url}/subscribe${filter === '' ? '' : `/${filter}`}?lastSeq=0&live=false`)
  if (res.status !== 200) throw new Error(`${url}/subscribe answered ${res.status}: ${res.body}`)
  return res.events
}

/**
 * What a relay's log must say of one homeserver: each of its events, once, in its order —
 * the same type, user, path, hash, size and time, and its seq there as `originSeq`.
 */
export function originView(events: readonly StreamEvent[]): string[] {
  return events.map((e) => [e.type, e.user, e.path, e.contentHash ?? '-', e.size ?? '-', e.ts].join(' '))
}

/** One homeserver's events in a relay's log, by its key, with their origin seqs. */
export function fromHomeserver(relayLog: readonly StreamEvent[], key: string): { events: StreamEvent[]; originSeqs: number[] } {
  const events = relayLog.filter((e) => e.homeserver === key)
  return { events, originSeqs: events.map((e) => Number(e.originSeq)) }
}

/** The relay's log holds each homeserver's whole log, once, in its order; its own seqs are gapless. */
export async function checkRelayLog(t: Test, relayUrl: string, homeservers: readonly { url: string; key: string }[]): Promise<StreamEvent[]> {
  const log = await wholeLog(relayUrl)
  t.same(log.map((e) => Number(e.seq)), log.map((_, i) => i + 1), 'the relay log is gapless from 1')
  let total = 0
  for (const hs of homeservers) {
    const origin = await wholeLog(hs.url)
    const mine = fromHomeserver(log, hs.key)
    t.same(mine.originSeqs, origin.map((e) => Number(e.seq)), `${hs.url}: every event once, in its order`)
    t.same(originView(mine.events), originView(origin), `${hs.url}: the same events`)
    total += origin.length
  }
  t.equal(log.length, total, 'nothing else is in the relay log')
  return log
}

/**
 * `rounds` of kill -9 and restart of a relay in a child process, each after a random pause of
 * 100 to 600 ms (plus `minMs`); returns a line for each round that found the relay dead on its own.
 */
export async function killRounds(relay: ChildServer, rounds: number, minMs = 0): Promise<string[]> {
  const violations: string[] = []
  for (let round = 0; round < rounds; round++) {
    await new Promise((r) => setTimeout(r, minMs + 100 + Math.random() * 500))
    if (!relay.running) violations.push(`round ${round}: the relay had died on its own:\n${relay.output}`)
    await relay.kill()
    await relay.restart()
  }
  return violations
}
