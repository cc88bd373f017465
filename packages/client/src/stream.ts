import {
  errorBodySchema, FollowHttpError, FutureCursorError, FollowProtocolError, infoSchema,
} from './events.js'
import { concat } from './bytes.js'
import { idOf } from './id.js'

/**
 * Where a stream opens: after a seq, or inside a snapshot, after the resume token of the last
 * frame received (none: from the snapshot's beginning).
 */
export type Position = bigint | { token: string | undefined }

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
  if (!res.ok) await refuse(res, idOf(0n), ep, signal)
  const info = infoSchema.safeParse(parseJson(await smallBody(res, ep.answerMs, signal)))
  if (!info.success) throw new FollowProtocolError(`${ep.url}/info does not say where the event log stands`)
  return BigInt(info.data.events.head)
}

/** Opens `GET /subscribe` at `at`; throws the typed refusal when it is not a 200. */
export async function openSubscribe(ep: Endpoint, filters: readonly string[], at: Position, signal: AbortSignal): Promise<Response> {
  const query = new URLSearchParams(filters.map((f) => ['filter', f]))
  if (typeof at !== 'bigint') query.set('snapshot', 'true')
  const resume = typeof at === 'bigint' ? idOf(at) : at.token
  const headers: Record<string, string> = resume === undefined ? {} : { 'last-event-id': resume }
  return openEvents(ep, `/subscribe${query.size > 0 ? `?${query}` : ''}`, headers, signal, resume ?? '')
}

/** Opens an SSE stream at `path`; throws the typed refusal (`cursor` names the position asked for) when it is not a 200. */
export async function openEvents(
  ep: Endpoint, path: string, headers: Record<string, string>, signal: AbortSignal, cursor = '',
): Promise<Response & { body: ReadableStream<Uint8Array> }> {
  const res = await request(ep, path, { accept: 'text/event-stream', ...headers }, signal)
  if (!res.ok || res.body === null) await refuse(res, cursor, ep, signal)
  return res as Response & { body: ReadableStream<Uint8Array> }
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
  let timer: ReturnType<typeof setTimeout> | undefined
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
  return new TextDecoder().decode(concat(...chunks))
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

async function refuse(res: Response, cursor: string, ep: Endpoint, signal: AbortSignal): Promise<never> {
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
  if (body?.error === 'FutureCursor') throw new FutureCursorError(cursor, body.head, message)
  throw new FollowHttpError(res.status, body?.error, message)
}
