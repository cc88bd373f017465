import { Client, Keypair, Pubky, PublicKey, type Session } from '@synonymdev/pubky'
import type { Server } from '../../src/server.js'
import { follow } from 'hearth-homeserver-client/follow'
import type { LogEvent } from 'hearth-homeserver-client'
import { filterMatches, parseFilter } from '../../src/subscriptions/filter.js'
import { startTestServer, type Teardown } from './server.js'
import { wholeLog } from './relay.js'

/**
 * Homeservers that publish their records to one testnet pkarr relay (the first one's), and the
 * official client pointed at it: users signed up with it publish real `_pubky` records there.
 */
export interface PkarrNet {
  /** the pkarr relay's URL */
  pkarr: string
  homeservers: Server[]
  pubky: Pubky
}

export async function pkarrNet(t: Teardown, count: number): Promise<PkarrNet> {
  const first = await startTestServer(t, { TESTNET: '1', PKARR_RELAY_PORT: '0' })
  const pkarr = first.relays[0]!
  const rest = await Promise.all(Array.from({ length: count - 1 }, () => startTestServer(t, { PKARR_RELAYS: pkarr })))
  return { pkarr, homeservers: [first, ...rest], pubky: Pubky.withClient(new Client({ pkarr: { relays: [pkarr] } })) }
}

/** A user of the official client: signed up on a homeserver, which its record names. */
export class Person {
  readonly keypair = Keypair.random()
  readonly user = this.keypair.publicKey.z32()
  readonly #net: PkarrNet
  #session: Session | undefined
  /** the homeservers written to, in order */
  readonly wroteOn: Server[] = []

  constructor(net: PkarrNet) {
    this.#net = net
  }

  /** Signs up on `hs` (again elsewhere: a move), which publishes the user's record naming it. */
  async signup(hs: Server): Promise<void> {
    const signer = this.#net.pubky.signer(this.keypair)
    this.#session = await signer.signup(PublicKey.from(hs.ctx.keypair.z32), null)
    await signer.pkdns.publishHomeserverForce(PublicKey.from(hs.ctx.keypair.z32))
    this.wroteOn.push(hs)
  }

  async put(path: string, text: string): Promise<void> {
    await this.#session!.storage.putText(path as `/pub/${string}`, text)
  }

  async delete(path: string): Promise<void> {
    await this.#session!.storage.delete(path as `/pub/${string}`)
  }

  /** Every event of this user on the homeservers they wrote to, with each one's key and seq there. */
  async events(): Promise<Array<LogEvent & { homeserver: string; originSeq: string }>> {
    const out: Array<LogEvent & { homeserver: string; originSeq: string }> = []
    for (const hs of new Set(this.wroteOn)) {
      for (const e of await wholeLog(hs.url, `${this.user}/*`)) out.push({ ...e, homeserver: hs.ctx.keypair.z32, originSeq: e.seq })
    }
    return out
  }
}

/** A relay subscriber from the start, with the project's follower: it resumes by itself after a relay restart. */
export class Subscriber {
  readonly filters: readonly string[]
  readonly events: LogEvent[] = []
  readonly #stop = new AbortController()
  readonly #done: Promise<void>

  constructor(relayUrl: () => string, filters: readonly string[]) {
    this.filters = filters
    this.#done = (async () => {
      const follower = follow({ url: relayUrl(), filters, from: 'start', cursorStore: 'memory', signal: this.#stop.signal, idleTimeoutMs: 5000, backoff: { baseMs: 50, maxMs: 300 } })
      for await (const ev of follower) this.events.push(ev)
    })()
  }

  async close(): Promise<void> {
    this.#stop.abort()
    await this.#done
  }
}

/** `homeserver:originSeq`: what identifies an event across the relay and its origin. */
export const originId = (e: { homeserver?: string; originSeq?: string }): string => `${e.homeserver}:${e.originSeq}`

/** What a subscriber with `filters` must receive of these users' events (as their origins hold them). */
export function expected(filters: readonly string[], events: readonly (LogEvent & { homeserver: string; originSeq: string })[]): string[] {
  const parsed = filters.map((f) => parseFilter(f))
  return events.filter((e) => parsed.some((f) => filterMatches(f, e))).map(originId)
}
