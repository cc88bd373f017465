import { createParser, type EventSourceParser } from 'eventsource-parser'
import {
  errorBodySchema, FollowHttpError, FollowProtocolError, FutureCursorError, infoSchema, logEventSchema, resetSchema,
  type LogEvent, type ResetInfo,
} from './events.js'
import { idOf, seqOfId } from '../shared/id.js'

/** What one `/subscribe` stream says, in order. */
export type Item =
  | { kind: 'event'; seq: bigint; event: LogEvent }
  /** the server scanned up to `seq` without another match */
  | { kind: 'mark'; seq: bigint }
  | { kind: 'reset'; info: ResetInfo }

/** A failure that a later attempt may not meet: the network, a 5xx, a 429. */
export class RetryableError extends Error {}

export interface Endpoint {
  url: string
  fetch: typeof fetch
  headers: Record<string, string>
}

/** `GET /info` → the head of the log. */
export async function readHead(ep: Endpoint, signal: AbortSignal): Promise<bigint> {
  const res = await request(ep, '/info', {}, signal)
  if (!res.ok) await refuse(res, 0n)
  const info = infoSchema.safeParse(await res.json().catch(() => undefined))
  if (!info.success) throw new FollowProtocolError(`${ep.url}/info does not say where the event log stands`)
  return BigInt(info.data.events.head)
}

/** Opens `GET /subscribe` resuming after `after`; throws the typed refusal when it is not a 200. */
export async function openSubscribe(ep: Endpoint, filters: readonly string[], after: bigint, signal: AbortSignal): Promise<Response> {
  const query = new URLSearchParams(filters.map((f) => ['filter', f]))
  const path = `/subscribe${filters.length > 0 ? `?${query}` : ''}`
  const res = await request(ep, path, { accept: 'text/event-stream', 'last-event-id': idOf(after) }, signal)
  if (!res.ok || res.body === null) await refuse(res, after)
  return res
}

async function request(ep: Endpoint, path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  try {
    return await ep.fetch(ep.url + path, { headers: { ...ep.headers, ...headers }, signal })
  } catch (err) {
    if (signal.aborted) throw err
    throw new RetryableError(`cannot reach ${ep.url}: ${(err as Error).message}`, { cause: err })
  }
}

async function refuse(res: Response, cursor: bigint): Promise<never> {
  const text = await res.text().catch(() => '')
  if (res.status === 429 || res.status >= 500 || res.ok) throw new RetryableError(`HTTP ${res.status} from ${res.url}`)
  let body: { error: string; message?: string; head?: string } | undefined
  try {
    body = errorBodySchema.parse(JSON.parse(text))
  } catch {
    body = undefined
  }
  const message = body?.message ?? (text || `HTTP ${res.status}`)
  if (body?.error === 'FutureCursor') throw new FutureCursorError(idOf(cursor), body.head, message)
  throw new FollowHttpError(res.status, body?.error, message)
}

/**
 * Reads one response body chunk by chunk and turns it into items. It reads only when asked,
 * so a consumer that stops pulling stops the reading, and TCP pushes back to the server.
 */
export class FrameReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #decoder = new TextDecoder()
  readonly #parser: EventSourceParser
  readonly #out: Item[]
  /** the server's `retry:` hint, ms */
  retryMs: number | undefined

  constructor(body: ReadableStream<Uint8Array>, out: Item[]) {
    this.#reader = body.getReader()
    this.#out = out
    this.#parser = createParser({
      onId: (id) => this.#mark(id),
      onEvent: (msg) => this.#event(msg.event, msg.id, msg.data),
      onRetry: (ms) => void (this.retryMs = ms),
    })
  }

  /** Reads one chunk into the item list. False once the stream ended or went silent for `idleMs`. */
  async pump(idleMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const idle = new Promise<'idle'>((resolve) => (timer = setTimeout(() => resolve('idle'), idleMs)))
    try {
      const chunk = await Promise.race([this.#reader.read(), idle])
      if (chunk === 'idle' || chunk.done) return false
      this.#parser.feed(this.#decoder.decode(chunk.value, { stream: true }))
      return true
    } catch (err) {
      if (err instanceof FollowProtocolError) throw err
      return false // a dropped connection: the caller reconnects from what was already read
    } finally {
      clearTimeout(timer)
    }
  }

  cancel(): void {
    this.#reader.cancel().catch(() => {})
  }

  #mark(id: string): void {
    const seq = seqOfId(id)
    if (seq === undefined) throw new FollowProtocolError(`the stream sent a malformed id: ${id}`)
    this.#out.push({ kind: 'mark', seq })
  }

  #event(type: string | undefined, id: string | undefined, data: string): void {
    if (type === 'reset') {
      this.#out.push({ kind: 'reset', info: parseData(resetSchema, data) })
      return
    }
    if (type !== 'PUT' && type !== 'DEL') return // room for frame types this client does not know
    const event = parseData(logEventSchema, data)
    const seq = BigInt(event.seq)
    if (id !== event.id || seqOfId(event.id) !== seq) {
      throw new FollowProtocolError(`the stream sent an event whose id and seq disagree: ${data}`)
    }
    // onId already recorded this frame's id as a bare mark; the event replaces it.
    const last = this.#out[this.#out.length - 1]
    if (last?.kind === 'mark' && last.seq === seq) this.#out.pop()
    this.#out.push({ kind: 'event', seq, event })
  }
}

function parseData<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }, data: string): T {
  let parsed: ReturnType<typeof schema.safeParse> | undefined
  try {
    parsed = schema.safeParse(JSON.parse(data))
  } catch {
    parsed = undefined
  }
  if (!parsed?.success) throw new FollowProtocolError(`the stream sent a malformed frame: ${data.slice(0, 200)}`)
  return parsed.data
}
