import type { LogEvent } from 'hearth-homeserver-client'
import http from 'node:http'
import { FrameParser, type SseFrame } from './sse-frames.js'

export interface SseConnection {
  /** status and headers, once the response starts */
  response: Promise<http.IncomingMessage>
  /** the whole body of a response that is not a 200 stream */
  errorBody: Promise<string>
  /** settles when the stream ends for any reason: server end, error, or close() */
  ended: Promise<void>
  close(): void
}

/**
 * A minimal SSE reader over node:http: every frame, including id-only frames and comments,
 * reaches `onFrame` in order. Unlike EventSource it never reconnects by itself, so a test
 * decides exactly which cursor the next connection resumes from.
 */
export function openSse(url: string, headers: Record<string, string>, onFrame: (frame: SseFrame) => void): SseConnection {
  let req!: http.ClientRequest
  let resolveEnded!: () => void
  let resolveBody!: (body: string) => void
  const ended = new Promise<void>((r) => (resolveEnded = r))
  const errorBody = new Promise<string>((r) => (resolveBody = r))
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req = http.get(url, { headers, agent: false }, (res) => {
      resolve(res)
      res.setEncoding('utf8')
      if (res.statusCode === 200) {
        const frames = new FrameParser(onFrame)
        res.on('data', (chunk: string) => frames.push(chunk))
      } else {
        let body = ''
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => resolveBody(body))
        res.on('close', () => resolveBody(body))
      }
      res.on('end', resolveEnded)
      res.on('close', resolveEnded)
      res.on('error', resolveEnded)
    })
    req.on('error', (err) => {
      reject(err)
      resolveEnded()
      resolveBody('')
    })
    req.on('close', resolveEnded)
  })
  response.catch(() => {})
  return { response, errorBody, ended, close: () => req.destroy() }
}

/** The decoded data of a `/subscribe` event frame: the client's own type for it. */
export type StreamEvent = LogEvent

/**
 * Reads a finite `/subscribe` stream (live=false) to its end and returns its events and the
 * last id it carried (event or id-only frame).
 */
export async function readSubscribe(url: string, headers: Record<string, string> = {}): Promise<{ status: number; events: StreamEvent[]; lastId?: string; frames: SseFrame[]; body?: string }> {
  const events: StreamEvent[] = []
  const frames: SseFrame[] = []
  let lastId: string | undefined
  const conn = openSse(url, headers, (f) => {
    frames.push(f)
    if (f.id !== undefined) lastId = f.id
    if ((f.event === 'PUT' || f.event === 'DEL') && f.data !== undefined) events.push(JSON.parse(f.data) as StreamEvent)
  })
  const res = await conn.response
  if (res.statusCode !== 200) return { status: res.statusCode ?? 0, events, frames, body: await conn.errorBody }
  await conn.ended
  return { status: 200, events, lastId, frames }
}

/**
 * A live `/subscribe` stream from `lastSeq`, closed at teardown: its events collect in
 * `events` as they arrive. Resolves once the stream answered, with its status.
 */
export async function liveEvents(t: { teardown(fn: () => unknown): void }, url: string, lastSeq = 0): Promise<{ status: number; events: StreamEvent[] }> {
  const events: StreamEvent[] = []
  const conn = openSse(`${url}/subscribe?lastSeq=${lastSeq}`, {}, (f) => {
    if ((f.event === 'PUT' || f.event === 'DEL') && f.data !== undefined) events.push(JSON.parse(f.data) as StreamEvent)
  })
  t.teardown(() => conn.close())
  return { status: (await conn.response).statusCode ?? 0, events }
}
