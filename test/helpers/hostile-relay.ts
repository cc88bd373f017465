import http from 'node:http'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { ChildServer } from './child-server.js'
import { FakeUpstream } from './fake-upstream.js'
import { caughtUp, fromHomeserver, originView, pinnedAt, relayInfo, wholeLog, type RelayInfo } from './relay.js'
import { headOf, type Teardown } from './server.js'

/**
 * `hearth relay`, in a process of its own, beside a hostile run: it follows the homeserver
 * under attack (pinned to its key), an upstream whose `/subscribe` answers 302 to a service
 * on 127.0.0.1 that shows a secret to whoever asks, and an impostor whose unsigned `/info`
 * claims the homeserver's key and which forges events of its own. Sampled while the run goes
 * on (`sample`), and checked at its end (`finish`):
 * - the service the redirect names is never asked;
 * - the secret shows neither in the relay's `/info` nor in a line it logs;
 * - the impostor is asked nothing but `/info`; the relay's log holds, under the homeserver's
 *   key, exactly the homeserver's own public events, each once, in order;
 * - the relay's cursor on the homeserver never passes the head the homeserver had.
 * Both hostile upstreams must have been tried and refused, or the checks proved nothing.
 */
export class RelayWatch {
  readonly failures: string[] = []
  readonly #relay: ChildServer
  readonly #homeserver: { url: string; upstream: string; key: string }
  readonly #redirect: FakeUpstream
  readonly #impostor: FakeUpstream
  readonly #secret: string
  readonly #asked: () => number
  samples = 0

  private constructor(relay: ChildServer, homeserver: RelayWatch['homeserver'], redirect: FakeUpstream, impostor: FakeUpstream, secret: string, asked: () => number) {
    this.#relay = relay
    this.#homeserver = homeserver
    this.#redirect = redirect
    this.#impostor = impostor
    this.#secret = secret
    this.#asked = asked
  }

  get homeserver(): { url: string; upstream: string; key: string } {
    return this.#homeserver
  }

  /** `env`: the relay's storage (a DATA_DIR, or a DATABASE_URL as well). */
  static async start(t: Teardown, homeserverUrl: string, env: Record<string, string> & { DATA_DIR: string }): Promise<RelayWatch> {
    const secret = `INTERNAL-ONLY-${randomBytes(12).toString('hex')}`
    let asked = 0
    const internal = http.createServer((_req, res) => (asked++, res.writeHead(200).end(`db_password=${secret}`)))
    await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => (internal.closeAllConnections(), internal.close(() => resolve()))))
    const upstream = await pinnedAt(homeserverUrl)
    const key = upstream.slice(0, upstream.indexOf('@'))
    const redirect = await FakeUpstream.start(t, 'redirect')
    redirect.internal = `http://127.0.0.1:${(internal.address() as AddressInfo).port}`
    const impostor = await FakeUpstream.start(t, 'good', key)
    let tail = ''
    const watch: { current?: RelayWatch } = {}
    const relay = await ChildServer.start({
      command: 'relay',
      dataDir: env.DATA_DIR,
      env: { ...env, RELAY_UPSTREAMS: [upstream, redirect.pinned, impostor.url].join(','), RELAY_RETRY_MAX_MS: '1000' },
      onOutput: (text) => {
        // a secret split across two chunks is still seen
        if ((tail + text).includes(secret)) watch.current?.failures.push(`the relay logged the secret the redirect's target serves: ${(tail + text).slice(0, 300)}`)
        tail = text.slice(-secret.length)
      },
    })
    t.teardown(() => relay.stop())
    watch.current = new RelayWatch(relay, { url: homeserverUrl, upstream, key }, redirect, impostor, secret, () => asked)
    return watch.current
  }

  /** One look while the run goes on: what `/info` shows, and the cursor against the head. */
  async sample(): Promise<void> {
    this.samples++
    const text = await (await fetch(`${this.#relay.url}/info`)).text()
    if (text.includes(this.#secret)) this.failures.push(`the relay's /info shows the secret: ${text.slice(0, 300)}`)
    const info = JSON.parse(text) as RelayInfo
    const head = await headOf(this.#homeserver.url)
    const cursor = Number(info.upstreams.find((u) => u.upstream === this.#homeserver.upstream)?.cursor ?? 0)
    if (cursor > head) this.failures.push(`the relay's cursor on the homeserver is ${cursor}, past its head ${head}`)
    if (this.#asked() > 0) this.failures.push(`the service a redirect named was asked ${this.#asked()} times`)
  }

  /** The end: the relay catches up, then its log is held against the homeserver's. */
  async finish(): Promise<{ failures: string[]; figures: Record<string, number> }> {
    await this.sample()
    const { url, upstream, key } = this.#homeserver
    try {
      await caughtUp(this.#relay.url, [upstream], 300_000)
    } catch (err) {
      this.failures.push(`the relay did not catch up with the homeserver: ${(err as Error).message}`)
    }
    // a replay with live=false ends by itself: one that does not is a failure, not a wait
    const origin = await this.#within(wholeLog(url), READ_MS, `the homeserver's /subscribe?lastSeq=0&live=false did not end within ${READ_MS} ms`)
    const relayLog = await this.#within(wholeLog(this.#relay.url), READ_MS, `the relay's /subscribe?lastSeq=0&live=false did not end within ${READ_MS} ms`)
    if (origin === undefined || relayLog === undefined) return this.#end(origin === undefined ? "the homeserver's log" : "the relay's log")
    const relayed = fromHomeserver(relayLog, key)
    const same = JSON.stringify(relayed.originSeqs) === JSON.stringify(origin.map((e) => Number(e.seq)))
      && JSON.stringify(originView(relayed.events)) === JSON.stringify(originView(origin))
    if (!same) {
      const forged = relayed.events.filter((e) => e.user === this.#impostor.user).length
      this.failures.push(`under the homeserver's key the relay holds ${relayed.events.length} events (${forged} of the impostor's) where the homeserver has ${origin.length} public ones`)
    }
    const info = await relayInfo(this.#relay.url)
    const of = (u: string) => info.upstreams.find((x) => x.upstream === u)
    const redirected = of(this.#redirect.pinned)?.faults.protocol ?? 0
    const unproven = of(this.#impostor.url)?.faults.unproven ?? 0
    if (this.#redirect.subscribes === 0 || redirected === 0) this.failures.push(`the redirecting upstream was never tried (${this.#redirect.subscribes} streams asked, ${redirected} protocol faults)`)
    if (this.#impostor.infos === 0 || unproven === 0) this.failures.push(`the impostor was never tried (${this.#impostor.infos} /info reads, ${unproven} refusals)`)
    if (this.#impostor.subscribes > 0) this.failures.push(`the impostor was asked for ${this.#impostor.subscribes} streams`)
    await this.#relay.stop()
    return {
      failures: this.failures,
      figures: { relayed: relayed.events.length, redirectsRefused: redirected, impostorRefused: unproven, relaySamples: this.samples },
    }
  }

  async #end(unread: string): Promise<{ failures: string[]; figures: Record<string, number> }> {
    this.failures.push(`${unread} could not be read whole: the relay's log was not compared`)
    await this.#relay.stop()
    return { failures: this.failures, figures: { relayed: 0, redirectsRefused: 0, impostorRefused: 0, relaySamples: this.samples } }
  }

  /** `p`, or undefined (and a failure saying `what`) when it has not settled within `ms`. */
  async #within<T>(p: Promise<T>, ms: number, what: string): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => (this.failures.push(what), resolve(undefined)), ms)))
    try {
      return await Promise.race([p, late])
    } finally {
      clearTimeout(timer)
    }
  }
}

/** How long one whole-log read may take at the end (16 MB of the longest paths take seconds). */
const READ_MS = 180_000
