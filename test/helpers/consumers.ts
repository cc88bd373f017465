import type { HomeserverClient } from 'hearth-homeserver-client'
import { openSse, type SseConnection, type StreamEvent } from './sse.js'
import { until } from './until.js'

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
let made = 0

/** A fresh ULID: the time `ms` in 10 characters, then 16 random ones (a counter keeps them apart). */
export function ulid(ms = Date.now()): string {
  let t = ms
  let time = ''
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32]! + time
    t = Math.floor(t / 32)
  }
  let rest = (++made).toString(32).toUpperCase().padStart(4, '0').replace(/[ILOU]/g, 'Z')
  while (rest.length < 16) rest = CROCKFORD[Math.floor(Math.random() * 32)]! + rest
  return time + rest
}

/** What a consumer route answered: status, JSON body (if any) and headers. */
export interface Answer<T = any> {
  status: number
  body: T
  headers: Headers
}

/** The consumer routes of one server, as `client`'s user (its session cookie and pubky-host). */
export class ConsumerApi {
  constructor(readonly url: string, readonly client: HomeserverClient) {}

  async call<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = this.client.headers()): Promise<Answer<T>> {
    const res = await fetch(this.url + path, {
      method, headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers }
  }

  put(id: string, definition: unknown) {
    return this.call('PUT', `/consumers/${id}`, definition)
  }

  state(id: string) {
    return this.call('GET', `/consumers/${id}`)
  }

  ack(id: string, acks: { ack?: string[]; nak?: string[]; term?: string[] }) {
    return this.call('POST', `/consumers/${id}/ack`, acks)
  }

  /** Creates a consumer, failing unless it answers 201. */
  async create(definition: unknown, id = ulid()): Promise<string> {
    const res = await this.put(id, definition)
    if (res.status !== 201) throw new Error(`PUT /consumers/${id}: ${res.status} ${JSON.stringify(res.body)}`)
    return id
  }

  /** A worker's stream of the consumer. */
  worker(id: string, options: WorkerOptions = {}): Worker {
    return new Worker(this, id, options)
  }
}

/** One delivery as a worker saw it; `arrival` orders the arrivals and ack requests of every worker in this process. */
export type Delivery = StreamEvent & { deliveries: number; arrival: number }

/** One clock for every worker here: what happened before what, as this process saw it. */
let ticks = 0

export interface WorkerOptions {
  /** ack each event once the turn of the event loop it arrived in is over (what arrived with it is seen first) */
  autoAck?: boolean
  headers?: Record<string, string>
}

/** A worker: one stream of a consumer, what it received, and acks on request. */
export class Worker {
  readonly got: Delivery[] = []
  readonly resets: { requested: string; floor: string }[] = []
  /** ids whose ack the server answered with 200 */
  readonly acked = new Set<string>()
  /** ids whose ack this worker sent, each with the tick it was sent at (the clock of `arrival`), the first time */
  readonly ackSent = new Map<string, number>()
  readonly conn: SseConnection
  readonly #api: ConsumerApi
  readonly #id: string

  constructor(api: ConsumerApi, id: string, options: WorkerOptions) {
    this.#api = api
    this.#id = id
    this.conn = openSse(`${api.url}/consumers/${id}/events`, options.headers ?? api.client.headers(), (f) => {
      if (f.event === 'reset' && f.data !== undefined) this.resets.push(JSON.parse(f.data))
      if ((f.event !== 'PUT' && f.event !== 'DEL') || f.data === undefined) return
      const d = { ...(JSON.parse(f.data) as Delivery), arrival: ++ticks }
      this.got.push(d)
      if (options.autoAck) setImmediate(() => this.ack([d.id]).catch(() => {})) // a server killed meanwhile: it comes back
    })
  }

  /** Resolves with the stream's status once it answered. */
  async status(): Promise<number> {
    return (await this.conn.response).statusCode ?? 0
  }

  async ack(ids: string[], kind: 'ack' | 'nak' | 'term' = 'ack'): Promise<void> {
    if (kind === 'ack') {
      const at = ++ticks
      for (const id of ids) if (!this.ackSent.has(id)) this.ackSent.set(id, at)
    }
    const res = await this.#api.ack(this.#id, { [kind]: ids })
    if (res.status !== 200) throw new Error(`ack: ${res.status} ${JSON.stringify(res.body)}`)
    if (kind === 'ack') for (const id of ids) this.acked.add(id)
  }

  /** Waits until it received at least `n` deliveries. */
  async received(n: number, what = `${n} deliveries`, ms = 30_000): Promise<Delivery[]> {
    await until(() => this.got.length >= n, what, ms, () => this.got.map((d) => `${d.seq}x${d.deliveries}`))
    return this.got
  }

  close(): void {
    this.conn.close()
  }
}
