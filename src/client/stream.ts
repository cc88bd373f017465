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
  /** a request whose response headers have not come within this long is dropped, and retried */
  answerMs: number
}

/** `GET /info` → the head of the log. */
export async function readHead(ep: Endpoint, signal: AbortSignal): Promise<bigint> {
  const res = await request(ep, '/info', {}, signal)
  if (!res.ok) await refuse(res, 0n, ep, signal)
  const info = infoSchema.safeParse(parseJson(await smallBody(res, ep.answerMs, signal)))
  if (!info.success) throw new FollowProtocolError(`${ep.url}/info does not say where the event log stands`)
  return BigInt(info.data.events.head)
}

/** Opens `GET /subscribe` resuming after `after`; throws the typed refusal when it is not a 200. */
export async function openSubscribe(ep: Endpoint, filters: readonly string[], after: bigint, signal: AbortSignal): Promise<Response> {
  const query = new URLSearchParams(filters.map((f) => ['filter', f]))
  const path = `/subscribe${filters.length > 0 ? `?${query}` : ''}`
  const res = await request(ep, path, { accept: 'text/event-stream', 'last-event-id': idOf(after) }, signal)
  if (!res.ok || res.body === null) await refuse(res, after, ep, signal)
  return res
}

/**
 * One request, abandoned when its response headers take longer than `ep.answerMs` (a server
 * that accepts the connection and says nothing). The deadline ends with the headers: the
 * body of a stream may then stay open for as long as it likes.
 */
async function request(ep: Endpoint, path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  const attempt = new AbortController()
  const stop = () => attempt.abort()
  signal.addEventListener('abort', stop, { once: true })
  const timer = setTimeout(stop, ep.answerMs)
  try {
    return await ep.fetch(ep.url + path, { headers: { ...ep.headers, ...headers }, signal: attempt.signal })
  } catch (err) {
    if (signal.aborted) throw err
    const why = attempt.signal.aborted ? `no answer within ${ep.answerMs} ms` : (err as Error).message
    throw new RetryableError(`cannot reach ${ep.url}: ${why}`, { cause: err })
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', stop)
  }
}

/** The largest body of a short answer (`/info`, an error) that is read; a longer one is a broken server. */
export const SMALL_BODY = 64 * 1024

/**
 * The body of a short answer, as text: at most `SMALL_BODY` bytes, within `ms`, given up when
 * `signal` aborts. A server that sends headers and then stalls, or streams without end,
 * gets a RetryableError, not a reader that waits or buffers forever.
 */
export async function smallBody(res: Response, ms: number, signal: AbortSignal): Promise<string> {
  if (res.body === null) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RetryableError(`no whole answer from ${res.url} within ${ms} ms`)), ms)
    onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
  })
  stopped.catch(() => {})
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), stopped])
      if (done) break
      size += value.length
      if (size > SMALL_BODY) throw new RetryableError(`${res.url} answered with more than ${SMALL_BODY} bytes`)
      chunks.push(value)
    }
  } catch (err) {
    reader.cancel().catch(() => {})
    throw err
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort!)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** The most characters of a server's own words that an error message carries. */
const MESSAGE_CHARS = 200

/** A line fit for a log or a status page: control characters dropped, at most MESSAGE_CHARS. */
export function shortLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim()
  return line.length <= MESSAGE_CHARS ? line : `${line.slice(0, MESSAGE_CHARS - 1)}…`
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

async function refuse(res: Response, cursor: bigint, ep: Endpoint, signal: AbortSignal): Promise<never> {
  const text = await smallBody(res, ep.answerMs, signal)
  if (res.status === 429 || res.status >= 500 || res.ok) throw new RetryableError(`HTTP ${res.status} from ${res.url}`)
  let body: { error: string; message?: string; head?: string } | undefined
  try {
    body = errorBodySchema.parse(JSON.parse(text))
  } catch {
    body = undefined
  }
  // only a well-formed error's own line, made short and printable: never a page of the body
  const message = body?.message === undefined ? `HTTP ${res.status}` : shortLine(body.message)
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
  readonly #maxFrame: number
  /** the position the stream was opened after, then the last one it named */
  #last: bigint
  /** the position before the current frame's id */
  #before: bigint
  #oversized = false
  #broken: FollowProtocolError | undefined
  /** the server's `retry:` hint, ms */
  retryMs: number | undefined

  /**
   * `after`: the cursor the stream was opened with; every event must come after it and after
   * the one before. `maxFrame`: the most characters one frame may take; a longer one (or a
   * line that never ends) is a protocol error, not a buffer that grows.
   */
  constructor(body: ReadableStream<Uint8Array>, out: Item[], after: bigint, maxFrame: number) {
    this.#reader = body.getReader()
    this.#out = out
    this.#last = this.#before = after
    this.#maxFrame = maxFrame
    this.#parser = createParser({
      onId: (id) => this.#mark(id),
      onEvent: (msg) => this.#checked(msg.event, msg.id, msg.data),
      onRetry: (ms) => void (this.retryMs = ms),
      onError: (err) => void (err.type === 'max-buffer-size-exceeded' && (this.#oversized = true)),
      maxBufferSize: maxFrame,
    })
  }

  /**
   * Reads one chunk into the item list: true, or once the stream is over, why (it ended,
   * dropped, or went silent for `idleMs`).
   */
  async pump(idleMs: number): Promise<true | RetryableError> {
    // what came before a broken frame is handed out first; the next read reports the break
    if (this.#broken !== undefined) throw this.#broken
    let timer: NodeJS.Timeout | undefined
    const idle = new Promise<'idle'>((resolve) => (timer = setTimeout(() => resolve('idle'), idleMs)))
    try {
      const chunk = await Promise.race([this.#reader.read(), idle])
      if (chunk === 'idle') return new RetryableError(`the stream sent nothing for ${idleMs} ms`)
      if (chunk.done) return new RetryableError('the stream ended')
      this.#parser.feed(this.#decoder.decode(chunk.value, { stream: true }))
      if (this.#oversized) throw new FollowProtocolError(`the stream sent a frame of more than ${this.#maxFrame} characters`)
      return true
    } catch (err) {
      if (err instanceof FollowProtocolError) {
        this.#broken = err
        return true
      }
      // a dropped connection: the caller reconnects from what was already read
      return new RetryableError(`the stream broke: ${(err as Error).message}`, { cause: err })
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
    // a keepalive may name the position again; going back is a broken or hostile server
    if (seq < this.#last) throw new FollowProtocolError(`the stream went back from ${this.#last} to ${seq}`)
    this.#out.push({ kind: 'mark', seq })
    this.#before = this.#last
    this.#last = seq
  }

  /** A frame that breaks the protocol takes back the mark its id left, so no cursor passes it. */
  #checked(type: string | undefined, id: string | undefined, data: string): void {
    try {
      this.#event(type, id, data)
    } catch (err) {
      const last = this.#out[this.#out.length - 1]
      if (id !== undefined && last?.kind === 'mark' && last.seq === seqOfId(id)) this.#out.pop()
      throw err
    }
  }

  #event(type: string | undefined, id: string | undefined, data: string): void {
    if (data.length > this.#maxFrame) throw new FollowProtocolError(`the stream sent a frame of more than ${this.#maxFrame} characters`)
    if (type === 'reset') {
      const info = parseData(resetSchema, data)
      const floor = BigInt(info.floor)
      // a reset moves forward, to the floor; one that would take the position back is broken
      if (floor - 1n < this.#last) throw new FollowProtocolError(`the stream sent a reset to floor ${floor}, behind position ${this.#last}`)
      this.#last = this.#before = floor - 1n
      this.#out.push({ kind: 'reset', info })
      return
    }
    if (type !== 'PUT' && type !== 'DEL') return // room for frame types this client does not know
    const event = parseData(logEventSchema, data)
    const seq = BigInt(event.seq)
    if (id !== event.id || seqOfId(event.id) !== seq) {
      throw new FollowProtocolError(`the stream sent an event whose id and seq disagree: ${data.slice(0, 200)}`)
    }
    // onId has just moved the position to this id: an event must lie beyond where it stood before
    if (seq <= this.#before) throw new FollowProtocolError(`the stream sent event ${seq} after position ${this.#before}`)
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
