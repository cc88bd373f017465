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
  return parseHead(raw.subarray(0, 16).toString('latin1'))?.status ?? 0
}

/** Status and headers (names in lower case) of a response head, or undefined when it is not HTTP/1.x. */
export function parseHead(head: string): { status: number; headers: http.IncomingHttpHeaders } | undefined {
  const lines = head.split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
  if (!m) return undefined
  const headers: http.IncomingHttpHeaders = {}
  for (const line of lines.slice(1)) {
    const c = line.indexOf(':')
    if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim()
  }
  return { status: Number(m[1]), headers }
}

/**
 * The chunked transfer coding taken off a body as its bytes arrive: `<hex size>\r\n<data>\r\n`,
 * repeated, until a zero size. Data is handed on as soon as it arrives, even part of a chunk.
 */
export class ChunkedDecoder {
  /** the zero-size chunk came: the body is complete */
  done = false
  /** a size line that is not a hex number came: decoding stopped there */
  malformed = false
  #held: Buffer = Buffer.alloc(0)
  /** data bytes of the current chunk still to come */
  #left = 0
  /** bytes of the CRLF after the current chunk's data still to come */
  #trailer = 0

  /** The body bytes in `bytes`, in order (none while a size line is incomplete). */
  push(bytes: Buffer): Buffer[] {
    const out: Buffer[] = []
    const buf = this.#held.length === 0 ? bytes : Buffer.concat([this.#held, bytes])
    let at = 0
    while (!this.done && !this.malformed && at < buf.length) {
      if (this.#left > 0) {
        const take = Math.min(this.#left, buf.length - at)
        out.push(buf.subarray(at, at + take))
        at += take
        this.#left -= take
        if (this.#left === 0) this.#trailer = 2
      } else if (this.#trailer > 0) {
        const take = Math.min(this.#trailer, buf.length - at)
        at += take
        this.#trailer -= take
      } else {
        const nl = buf.indexOf('\r\n', at)
        if (nl === -1) break
        const size = parseInt(buf.subarray(at, nl).toString('latin1'), 16)
        at = nl + 2
        if (!(size >= 0)) this.malformed = true
        else if (size === 0) this.done = true
        else this.#left = size
      }
    }
    this.#held = buf.subarray(at)
    return out
  }
}

/**
 * An HTTP/1.1 response read as its bytes come off a socket: the head, then the body with any
 * chunked coding taken off, handed to `onBody` piece by piece.
 */
export class ResponseDecoder {
  /** 0 until the whole head has come; -1 when it was not an HTTP/1.x head */
  status = 0
  headers: http.IncomingHttpHeaders = {}
  #head = ''
  #chunked: ChunkedDecoder | undefined
  readonly #onBody: (bytes: Buffer) => void

  constructor(onBody: (bytes: Buffer) => void) {
    this.#onBody = onBody
  }

  /** the last chunk of a chunked body came */
  get complete(): boolean {
    return this.#chunked?.done ?? false
  }

  push(bytes: Buffer): void {
    if (this.status === 0) {
      this.#head += bytes.toString('latin1')
      const end = this.#head.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = parseHead(this.#head.slice(0, end)) ?? { status: -1, headers: {} }
      this.status = head.status
      this.headers = head.headers
      if (this.headers['transfer-encoding']?.toLowerCase() === 'chunked') this.#chunked = new ChunkedDecoder()
      bytes = Buffer.from(this.#head.slice(end + 4), 'latin1')
      this.#head = ''
    }
    if (this.#chunked === undefined) this.#onBody(bytes)
    else for (const piece of this.#chunked.push(bytes)) this.#onBody(piece)
  }
}

/**
 * A GET whose chunked response is read off the socket as the server framed it: one Buffer per
 * HTTP chunk, which is one write (or one corked run of writes) of the server, whatever TCP did
 * to the bytes. Resolves at the last chunk; rejects after `ms`.
 */
export function chunkedBody(base: string, path: string, headers: Record<string, string> = {}, ms = 20_000): Promise<Buffer[]> {
  const url = new URL(base)
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')
  return new Promise((resolve, reject) => {
    let raw = Buffer.alloc(0)
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\n${extra}\r\n`))
    const timer = setTimeout(() => finish(new Error(`no end of ${path} within ${ms} ms`)), ms)
    const finish = (err?: Error, chunks?: Buffer[]) => {
      clearTimeout(timer)
      socket.destroy()
      if (err !== undefined) reject(err)
      else resolve(chunks!)
    }
    socket.on('data', (c: Buffer) => {
      raw = Buffer.concat([raw, c])
      const chunks = httpChunks(raw)
      if (chunks !== undefined) finish(undefined, chunks)
    })
    socket.on('error', (err) => finish(err))
    socket.on('close', () => finish(new Error(`${path}: the connection closed before the last chunk`)))
  })
}

/** The chunks of a whole chunked response, or undefined while its last chunk has not come. */
function httpChunks(raw: Buffer): Buffer[] | undefined {
  const head = raw.indexOf('\r\n\r\n')
  if (head < 0) return undefined
  let at = head + 4
  const chunks: Buffer[] = []
  for (;;) {
    const eol = raw.indexOf('\r\n', at)
    if (eol < 0) return undefined
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16)
    if (size === 0) return chunks
    if (raw.length < eol + 2 + size + 2) return undefined
    chunks.push(raw.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
}
