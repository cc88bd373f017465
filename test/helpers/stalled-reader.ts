import net from 'node:net'
import { ResponseDecoder } from './raw-http.js'
import { FrameParser, type SseFrame } from './sse-frames.js'

/**
 * An SSE client on a raw socket that sends its request and then does not read a byte until
 * told to: the kernel buffers fill, then the server's, and the server has to cope. Once
 * resumed it decodes the HTTP response and hands every frame to `onFrame`.
 */
export class StalledReader {
  readonly #socket: net.Socket
  readonly #response: ResponseDecoder
  #ended = false

  constructor(url: string, target: string, onFrame: (frame: SseFrame) => void, headers: Record<string, string> = {}) {
    const { hostname, port } = new URL(url)
    const frames = new FrameParser(onFrame)
    this.#response = new ResponseDecoder((body) => frames.push(body))
    this.#socket = net.connect(Number(port), hostname)
    const lines = [`GET ${target} HTTP/1.1`, `Host: ${hostname}:${port}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', '']
    this.#socket.write(lines.join('\r\n'))
    this.#socket.pause()
    this.#socket.on('data', (c: Buffer) => this.#response.push(c))
    this.#socket.on('close', () => (this.#ended = true))
    this.#socket.on('error', () => (this.#ended = true))
  }

  /** the response status, once resumed and the head has arrived */
  get status(): number {
    return this.#response.status
  }

  get ended(): boolean {
    return this.#ended
  }

  resume(): void {
    this.#socket.resume()
  }

  close(): void {
    this.#socket.destroy()
  }
}
