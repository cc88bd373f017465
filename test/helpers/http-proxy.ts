import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { pipeline } from 'node:stream'
import type { Teardown } from './server.js'

/** A request as the proxy received it, before it is forwarded. */
export interface SeenRequest {
  method: string
  /** the path and query */
  url: string
  body: string
}

/**
 * An HTTP proxy on 127.0.0.1 in front of a real server: every request is forwarded as it came
 * (its body read whole, the answer streamed back, so SSE passes), after `hold` has seen it and
 * let it go. A test sees what a client sends over the wire, whatever the client sends it with,
 * and may keep a request back.
 */
export class HttpProxy {
  readonly #server: http.Server
  readonly #target: URL
  readonly #hold: (req: SeenRequest) => unknown
  #url = ''

  private constructor(target: string, hold: (req: SeenRequest) => unknown) {
    this.#target = new URL(target)
    this.#hold = hold
    this.#server = http.createServer((req, res) => void this.#forward(req, res).catch(() => res.destroy()))
    // a client's idle connection stays open as long as the server's would: closed earlier, a
    // client could send its next request on a connection the proxy is closing
    this.#server.keepAliveTimeout = 120_000
  }

  static async start(t: Teardown, target: string, hold: (req: SeenRequest) => unknown = () => {}): Promise<HttpProxy> {
    const proxy = new HttpProxy(target, hold)
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve))
    proxy.#url = `http://127.0.0.1:${(proxy.#server.address() as AddressInfo).port}`
    t.teardown(() => proxy.close())
    return proxy
  }

  /** `http://127.0.0.1:<port>`: where clients connect */
  get url(): string {
    return this.#url
  }

  close(): Promise<void> {
    this.#server.closeAllConnections()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  async #forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let left = false
    res.on('close', () => void (left = true))
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks)
    await this.#hold({ method: req.method ?? 'GET', url: req.url ?? '/', body: body.toString('utf8') })
    // a client that left while its request was held: nothing goes on
    if (left) return
    const up = http.request(new URL(req.url ?? '/', this.#target), { method: req.method, headers: { ...req.headers, host: this.#target.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, withoutHopHeaders(answer.headers))
      // the headers go at once, before any body: an SSE stream is open from here
      res.flushHeaders()
      // an answer cut upstream is cut here too
      pipeline(answer, res, () => {})
    })
    up.on('error', () => res.destroy())
    // the client left (an SSE stream closed): so does the request upstream
    res.on('close', () => up.destroy())
    up.end(body)
  }
}

/** The answer's headers less those of its own connection to the proxy. */
function withoutHopHeaders(headers: http.IncomingHttpHeaders): http.IncomingHttpHeaders {
  const { connection: _c, 'keep-alive': _k, 'transfer-encoding': _t, ...rest } = headers
  return rest
}
