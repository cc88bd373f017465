import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { EventSource } from 'eventsource'
import type { HomeserverClient } from 'hearth-homeserver-client'
import { ResponseDecoder } from './raw-http.js'
import { FrameParser, type SseFrame } from './sse-frames.js'

/**
 * An SSE response read as raw bytes with fetch, split into frames at blank lines. Frames
 * queue until taken, so nothing is missed between reads.
 */
export class RawStream {
  readonly response: Response
  readonly frames: SseFrame[] = []
  ended = false
  /** set when the body broke off instead of ending cleanly */
  error: unknown
  readonly #parser = new FrameParser((f) => this.frames.push(f))
  #waiters: (() => void)[] = []
  readonly #abort: AbortController

  private constructor(response: Response, abort: AbortController) {
    this.response = response
    this.#abort = abort
    void this.#pump()
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<RawStream> {
    const abort = new AbortController()
    const res = await fetch(url, { headers, signal: abort.signal })
    return new RawStream(res, abort)
  }

  async #pump(): Promise<void> {
    try {
      for await (const chunk of this.response.body as unknown as AsyncIterable<Uint8Array>) {
        this.#parser.push(chunk)
        this.#wake()
      }
    } catch (err) {
      if (!this.#abort.signal.aborted) this.error = err
    }
    this.ended = true
    this.#wake()
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w()
  }

  /** Waits until `done(frames)` holds or the stream ends; rejects after `ms`. */
  async until(done: (frames: readonly SseFrame[]) => boolean, ms = 20_000): Promise<SseFrame[]> {
    const deadline = Date.now() + ms
    while (!done(this.frames)) {
      if (this.ended) throw new Error(`stream ended first; frames: ${this.frames.length}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out; frames: ${this.frames.length}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => (clearTimeout(timer), resolve()))
      })
    }
    return this.frames
  }

  /** Reads to the end of the response. */
  async all(ms = 20_000): Promise<SseFrame[]> {
    await this.until(() => this.ended, ms).catch((err) => {
      if (!this.ended) throw err
    })
    return this.frames
  }

  /** Bytes after the last complete frame: the whole body of an error answer. */
  get rest(): string {
    return this.#parser.rest
  }

  events(): SseFrame[] {
    return this.frames.filter((f) => f.event === 'PUT' || f.event === 'DEL')
  }

  close(): void {
    this.#abort.abort()
  }
}

/** The seq of a `/subscribe` event frame (from its JSON), or of an `/events-stream` one (its id). */
export function seqOf(frame: SseFrame): number {
  if (frame.data?.startsWith('{')) return Number((JSON.parse(frame.data) as { seq: string }).seq)
  return Number(frame.id)
}

/** An eventsource@4 client that records its PUT/DEL/reset events and every request it made. */
export class Follower {
  readonly es: EventSource
  readonly events: MessageEvent[] = []
  readonly requests: Record<string, string>[] = []
  errors = 0
  #waiters: (() => void)[] = []

  constructor(url: string, headers: Record<string, string> = {}) {
    this.es = new EventSource(url, {
      fetch: (input, init) => {
        const h = { ...(init?.headers as Record<string, string>), ...headers }
        this.requests.push(h)
        return fetch(input, { ...init, headers: h })
      },
    })
    for (const type of ['PUT', 'DEL', 'reset']) {
      this.es.addEventListener(type, (ev) => {
        this.events.push(ev)
        this.#wake()
      })
    }
    this.es.addEventListener('error', () => {
      this.errors++
      this.#wake()
    })
    this.es.addEventListener('open', () => this.#wake())
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w()
  }

  async until(done: () => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!done()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out; events: ${this.events.length}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200))
        this.#waiters.push(() => (clearTimeout(timer), resolve()))
      })
    }
  }

  opened(): Promise<void> {
    return this.until(() => this.es.readyState === this.es.OPEN)
  }

  /** The seqs of the PUT/DEL events received, from their JSON. */
  seqs(): number[] {
    return this.events.filter((e) => e.type !== 'reset').map((e) => Number((JSON.parse(e.data as string) as { seq: string }).seq))
  }

  close(): void {
    this.es.close()
  }
}

/** `n` PUTs spread over `concurrency` parallel requests; `path(i)` names each. */
export async function writeMany(client: HomeserverClient, n: number, path: (i: number) => string, concurrency = 4): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < n) {
      const i = next++
      await client.put(path(i), `v${i}`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

/**
 * An SSE stream over a bare TCP socket, with the request written by hand and the response
 * decoded by the test: the test decides when the socket reads, so it can stall a subscriber.
 * Each complete frame goes to `onFrame`; nothing is kept.
 */
export class SocketStream {
  readonly socket: Socket
  ended = false
  readonly #response: ResponseDecoder
  #waiters: (() => void)[] = []

  private constructor(socket: Socket, onFrame: (frame: SseFrame, bytes: number) => void) {
    this.socket = socket
    const frames = new FrameParser(onFrame)
    this.#response = new ResponseDecoder((body) => frames.push(body))
    socket.on('data', (chunk: Buffer) => {
      this.#response.push(chunk)
      if (this.#response.complete) this.ended = true
      this.#wake()
    })
    socket.on('close', () => {
      this.ended = true
      this.#wake()
    })
  }

  static async open(url: string, path: string, onFrame: (frame: SseFrame, bytes: number) => void, headers: Record<string, string> = {}): Promise<SocketStream> {
    const { hostname, port } = new URL(url)
    const socket = connect(Number(port), hostname)
    await once(socket, 'connect')
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n${extra}\r\n`)
    const stream = new SocketStream(socket, onFrame)
    await stream.until(() => stream.status !== 0)
    return stream
  }

  /** the response status, once its head has come */
  get status(): number {
    return this.#response.status
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w()
  }

  async until(done: () => boolean, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!done()) {
      if (this.ended) throw new Error('the stream ended first')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('timed out')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100))
        this.#waiters.push(() => (clearTimeout(timer), resolve()))
      })
    }
  }

  close(): void {
    this.socket.destroy()
  }
}
