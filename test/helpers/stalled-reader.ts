import net from 'node:net'
import { StringDecoder } from 'node:string_decoder'
import { frameParser, type SseFrame } from './sse.js'

/**
 * An SSE client on a raw socket that sends its request and then does not read a byte until
 * told to: the kernel buffers fill, then the server's, and the server has to cope. Once
 * resumed it decodes the HTTP response (chunked) and hands every frame to `onFrame`.
 */
export class StalledReader {
  readonly #socket: net.Socket
  readonly #decoder = new StringDecoder('utf8')
  readonly #parse: (text: string) => void
  #head = ''
  #status = 0
  #body: Buffer = Buffer.alloc(0)
  #chunked = false
  #ended = false

  constructor(url: string, target: string, onFrame: (frame: SseFrame) => void, headers: Record<string, string> = {}) {
    const { hostname, port } = new URL(url)
    this.#parse = frameParser(onFrame)
    this.#socket = net.connect(Number(port), hostname)
    const lines = [`GET ${target} HTTP/1.1`, `Host: ${hostname}:${port}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', '']
    this.#socket.write(lines.join('\r\n'))
    this.#socket.pause()
    this.#socket.on('data', (c: Buffer) => this.#take(c))
    this.#socket.on('close', () => (this.#ended = true))
    this.#socket.on('error', () => (this.#ended = true))
  }

  /** the response status, once resumed and the head has arrived */
  get status(): number {
    return this.#status
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

  #take(chunk: Buffer): void {
    if (this.#status === 0) {
      this.#head += chunk.toString('latin1')
      const end = this.#head.indexOf('\r\n\r\n')
      if (end === -1) return
      this.#status = Number(/^HTTP\/1\.1 (\d{3})/.exec(this.#head)?.[1] ?? 0)
      this.#chunked = /\r\ntransfer-encoding: chunked\r\n/i.test(this.#head.slice(0, end + 2))
      chunk = Buffer.from(this.#head.slice(end + 4), 'latin1')
    }
    if (!this.#chunked) return this.#parse(this.#decoder.write(chunk))
    this.#body = this.#body.length === 0 ? chunk : Buffer.concat([this.#body, chunk])
    // chunk framing: `<hex size>\r\n<data>\r\n`, repeated; stop at the first incomplete one
    let at = 0
    for (;;) {
      const nl = this.#body.indexOf('\r\n', at)
      if (nl === -1) break
      const size = parseInt(this.#body.subarray(at, nl).toString('latin1'), 16)
      if (Number.isNaN(size) || this.#body.length < nl + 2 + size + 2) break
      this.#parse(this.#decoder.write(this.#body.subarray(nl + 2, nl + 2 + size)))
      at = nl + 2 + size + 2
    }
    this.#body = this.#body.subarray(at)
  }
}
