import http from 'node:http'
import net from 'node:net'

export interface RawRequest {
  method?: string
  /** sent exactly as given: no normalisation, no encoding */
  path: string
  headers?: Record<string, string | string[]>
  body?: Uint8Array | string
  /** give up on a response that has not ended by then (streams), keeping what arrived */
  timeoutMs?: number
  /** fail when the response headers have not come by then (10 s by default) */
  headersMs?: number
  /** stop reading after this many body bytes */
  maxBytes?: number
  agent?: http.Agent | false
}

export interface RawResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
  /** the body was cut short by timeoutMs or maxBytes */
  truncated: boolean
}

/**
 * One request over node:http with the path sent verbatim (fetch would resolve `..` and
 * re-encode), for tests that must reach the server's own URL handling.
 */
export function rawRequest(base: string, req: RawRequest): Promise<RawResponse> {
  const url = new URL(base)
  // node:http sends a GET or DELETE body unframed unless told its length
  const headers = req.body === undefined || hasHeader(req.headers, 'content-length') || hasHeader(req.headers, 'transfer-encoding')
    ? req.headers
    : { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) }
  return new Promise((resolve, reject) => {
    const headersMs = req.headersMs ?? 10_000
    const r = http.request({
      host: url.hostname, port: url.port, method: req.method ?? 'GET', path: req.path,
      headers, agent: req.agent ?? false,
    }, (res) => {
      clearTimeout(noHeaders)
      const chunks: Buffer[] = []
      let size = 0
      let done = false
      const finish = (truncated: boolean) => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (truncated) res.destroy()
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), truncated })
      }
      const timer = setTimeout(() => finish(true), req.timeoutMs ?? 10_000)
      res.on('data', (c: Buffer) => {
        chunks.push(c)
        size += c.length
        if (req.maxBytes !== undefined && size >= req.maxBytes) finish(true)
      })
      res.on('end', () => finish(false))
      res.on('close', () => finish(!res.complete))
      res.on('error', () => finish(true))
    })
    // A kept-alive socket the server had already closed: callers may retry on a fresh one.
    r.on('error', (err: Error & { reusedSocket?: boolean }) => {
      clearTimeout(noHeaders)
      reject(Object.assign(err, { reusedSocket: r.reusedSocket }))
    })
    const noHeaders = setTimeout(() => r.destroy(Object.assign(new Error(`no response headers within ${headersMs} ms`), { code: 'ETIMEDOUT' })), headersMs)
    r.end(req.body)
  })
}

function hasHeader(headers: RawRequest['headers'], name: string): boolean {
  return Object.keys(headers ?? {}).some((k) => k.toLowerCase() === name)
}

/**
 * Bytes straight onto a socket, for requests node:http refuses to send (raw control
 * characters, bytes above 0x7f, broken framing). Returns whatever came back before the
 * server closed or `timeoutMs` passed.
 */
export async function rawExchange(base: string, bytes: Uint8Array | string, timeoutMs = 5000): Promise<Buffer> {
  return (await rawConversation(base, bytes, timeoutMs)).bytes
}

/**
 * `rawExchange`, also telling whether the server ended the connection before `timeoutMs`.
 * With `firstByteMs` past `timeoutMs` (streams, which never end by themselves), a server that
 * has sent nothing by `timeoutMs` gets until `firstByteMs`, and then `timeoutMs` more from its
 * first byte; nothing back and `closedByServer` false means it never answered.
 */
export function rawConversation(base: string, bytes: Uint8Array | string, timeoutMs = 5000, firstByteMs = timeoutMs): Promise<{ bytes: Buffer; closedByServer: boolean }> {
  const url = new URL(base)
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write(bytes))
    const done = (closedByServer: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ bytes: Buffer.concat(chunks), closedByServer })
    }
    let waitingForFirstByte = false
    let timer = setTimeout(() => {
      if (chunks.length > 0 || firstByteMs <= timeoutMs) return done(false)
      waitingForFirstByte = true
      timer = setTimeout(() => done(false), firstByteMs - timeoutMs)
    }, timeoutMs)
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      if (waitingForFirstByte) {
        waitingForFirstByte = false
        clearTimeout(timer)
        timer = setTimeout(() => done(false), timeoutMs)
      }
    })
    socket.on('end', () => done(true))
    socket.on('close', () => done(true))
    socket.on('error', () => done(true))
  })
}

/** The status code of a raw HTTP/1.1 response, or 0 when nothing parseable came back. */
export function statusOf(raw: Buffer): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw.subarray(0, 16).toString('latin1'))
  return m ? Number(m[1]) : 0
}
