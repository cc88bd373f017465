import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomKeypair } from '../../src/auth/keys.js'
import { framesOf } from '../../src/feed/frames.js'
import type { HearthEvent } from '../../src/events/event.js'
import { parseCursor } from 'hearth-homeserver-client/id'
import type { Teardown } from './server.js'

/** How a fake upstream misbehaves after serving its three good events. */
export type Misbehaviour =
  | 'goes-back' // sends an event whose seq is not above the last one
  | 'malformed' // a frame whose data is not JSON
  | 'huge' // one frame of 10 MB
  | 'no-answer' // /subscribe never sends its response headers
  | 'silent' // /subscribe answers 200 and then never sends a byte
  | 'private' // an event for a /priv/ path, which no public feed carries
  | 'key-change' // /info names another homeserver key once the relay has followed it
  | 'redirect' // /subscribe answers 302 to a service behind the relay, which must never be asked
  | 'lone-surrogate' // a path no UTF-8 request could have named
  | 'huge-size' // a PUT of 2^53 - 1 bytes
  | 'future' // a commit time in the year 275760
  | 'good' // its three events, then an open, quiet stream
  | 'held' // its first event only, the rest (and one more, past its head) when `release()` is called

export const GOOD = 3

/**
 * A server that speaks just enough of the homeserver protocol to be followed (`/info`,
 * `/subscribe`), with three good events, and then breaks it in one way. It counts the
 * streams asked of it, so a test can see the relay come back after each drop. Its `/info`
 * names its own key, or `claims` (an impostor: another homeserver's key, whose events it forges).
 */
export class FakeUpstream {
  /** its own keypair, to publish a pkarr record for it; `key` is another when it claims one */
  readonly keypair = randomKeypair()
  readonly key: string
  readonly other = randomKeypair().z32
  /** the user its events are of, whose secret a test may need to publish the user's record */
  readonly userKeypair = randomKeypair()
  readonly user = this.userKeypair.z32
  readonly behaviour: Misbehaviour
  readonly #server: http.Server
  /** where a `redirect` upstream points: a service that answers secrets to whoever asks */
  internal = ''
  subscribes = 0
  infos = 0
  url = ''
  /** `held`: the streams open now, waiting for `release()` */
  readonly #held: http.ServerResponse[] = []

  constructor(behaviour: Misbehaviour, claims?: string) {
    this.behaviour = behaviour
    this.key = claims ?? this.keypair.z32
    this.#server = http.createServer((req, res) => this.#answer(req, res))
  }

  static async start(t: Teardown, behaviour: Misbehaviour, claims?: string): Promise<FakeUpstream> {
    const fake = new FakeUpstream(behaviour, claims)
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve))
    fake.url = `http://127.0.0.1:${(fake.#server.address() as AddressInfo).port}`
    t.teardown(() => new Promise<void>((resolve) => {
      fake.#server.closeAllConnections()
      fake.#server.close(() => resolve())
    }))
    return fake
  }

  /**
   * `held`: sends the events it held back on every open stream: seqs 2 and 3, which its
   * `/info` counted from the start, and 4, written past the head it named.
   */
  release(): void {
    for (const res of this.#held.splice(0)) for (let seq = 2; seq <= GOOD + 1; seq++) res.write(framesOf(this.event(seq)).subscribeText)
  }

  /** the upstream pinned to its key, as an operator who trusts it gives it */
  get pinned(): string {
    return `${this.key}@${this.url}`
  }

  event(seq: number, path = `/pub/fake/${seq}`): HearthEvent {
    return { seq, type: 'PUT', user: this.user, path, contentHash: Buffer.alloc(32, seq).toString('base64'), size: seq, ts: 1_700_000_000_000 + seq }
  }

  #answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.url === '/info') {
      this.infos++
      // the key flips once the relay has followed the stream (its first two /info reads)
      const key = this.behaviour === 'key-change' && this.infos > 2 ? this.other : this.key
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ publicKey: key, events: { head: String(GOOD), floor: '1' } }))
      return
    }
    if (!req.url!.startsWith('/subscribe')) return void res.writeHead(404).end()
    this.subscribes++
    if (this.behaviour === 'no-answer') return
    if (this.behaviour === 'redirect') return void res.writeHead(302, { location: `${this.internal}/admin?x=` }).end('moved')
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    if (this.behaviour === 'silent') return void res.flushHeaders()
    const after = Number(parseCursor(String(req.headers['last-event-id'] ?? '0')) ?? 0)
    res.write('retry: 2000\n\n')
    const last = this.behaviour === 'held' ? 1 : GOOD
    for (let seq = after + 1; seq <= last; seq++) res.write(framesOf(this.event(seq)).subscribeText)
    switch (this.behaviour) {
      case 'goes-back':
        res.write(framesOf(this.event(Math.max(1, after))).subscribeText)
        return
      case 'malformed':
        res.write(`id: ${framesOf(this.event(GOOD + 1)).id}\nevent: PUT\ndata: {"seq": not json\n\n`)
        return
      case 'huge': {
        res.write('event: PUT\ndata: ')
        const chunk = 'x'.repeat(64 * 1024)
        for (let i = 0; i < 160; i++) res.write(chunk)
        res.end('\n\n')
        return
      }
      case 'private':
        res.write(framesOf(this.event(GOOD + 1, '/priv/secret.txt')).subscribeText)
        return
      case 'lone-surrogate':
        res.write(framesOf(this.event(GOOD + 1, '/pub/\ud800x')).subscribeText)
        return
      case 'huge-size':
        res.write(framesOf({ ...this.event(GOOD + 1), size: 2 ** 53 - 1 }).subscribeText)
        return
      case 'future':
        res.write(framesOf({ ...this.event(GOOD + 1), ts: 8.64e15 }).subscribeText)
        return
      case 'good':
        return
      case 'held':
        this.#held.push(res)
        return
      case 'key-change':
        // end the stream: the follower's reconnect reads /info again
        res.end()
        return
    }
  }
}

