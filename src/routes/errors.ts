import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { ZodError } from 'zod'
import { ERRORS, HearthError, type ErrorCode } from '../errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** storage and auth routes answer errors in plain text, as upstream does */
    plainErrors?: boolean
  }
}

/**
 * The one place where errors become HTTP answers. Domain errors carry their code and status;
 * Fastify's own 4xx (bad URL, bad header) pass through with their message; anything else is
 * a 500 whose details stay in the log.
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HearthError | ZodError, req, reply) => {
    const { status, code, message, details } = describe(err)
    logAnswer(req, err, status, code, message)
    send(req, reply, status, code, message, details)
  })
  app.setNotFoundHandler((req, reply) => send(req, reply, 404, 'NotFound', 'Not found'))
}

/**
 * The error level, with a stack, is for faults only. Anything a client can cause at will (any
 * 4xx, and the 503 and 507 refusals the domain raises) is one line without a stack, so no
 * client can fill the error log.
 */
function logAnswer(req: FastifyRequest, err: unknown, status: number, code: string, message: string): void {
  // an upload the client abandoned mid-body: nobody to answer, and nothing went wrong here
  if (clientLeft(req, err)) return void req.log.info({ reason: (err as Error).message }, 'request abandoned by the client')
  const fault = status >= 500 && !(err instanceof HearthError && err.code !== 'Internal')
  if (fault) req.log.error({ err }, 'request failed')
  else if (status >= 500) req.log.warn({ status, code, reason: message }, 'request refused')
  else req.log.info({ status, code, reason: message }, 'request refused')
}

function clientLeft(req: FastifyRequest, err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return req.raw.aborted || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as Error).message === 'aborted'
}

function describe(err: unknown): { status: number; code: string; message: string; details?: Record<string, unknown> } {
  if (err instanceof HearthError) return { status: err.status, code: err.code, message: err.message, details: err.details }
  if (err instanceof ZodError) {
    const issue = err.issues[0]
    return { status: 400, code: 'InvalidQuery', message: `${issue?.path.join('.') || 'input'}: ${issue?.message ?? 'invalid'}` }
  }
  const e = err as FastifyError
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500
  if (status >= 400 && status < 500) return { status, code: fastifyCode(status), message: e.message }
  return { status: 500, code: 'Internal', message: 'Internal server error' }
}

function fastifyCode(status: number): ErrorCode {
  const codes: Record<number, ErrorCode> = { 413: 'PayloadTooLarge', 415: 'UnsupportedMediaType', 429: 'TooManyRequests', 431: 'HeadersTooLarge' }
  return codes[status] ?? 'BadRequest'
}

export function send(req: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string, details?: Record<string, unknown>): void {
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy()
    return
  }
  reply.code(status)
  // A refused body was not read to its end: the connection cannot carry another request.
  if (status === 413) reply.header('connection', 'close')
  // a 503 is a passing refusal (a full write queue, a storage not ready): say when to come back
  if (status === 503) reply.header('retry-after', '1')
  if (req.routeOptions.config?.plainErrors) {
    void reply.type('text/plain; charset=utf-8').send(message)
  } else {
    void reply.type('application/json; charset=utf-8').send({ error: code, message, ...details })
  }
}

/**
 * A URL that does not decode reaches no route; it is answered in the shape of the route it
 * names (writes go to the file API whatever the path, as the catch-all route says).
 */
export function sendBadUrl(req: FastifyRequest, reply: FastifyReply): void {
  const m = req.method
  const plain = m === 'PUT' || m === 'DELETE' ||
    (m === 'POST' && /^\/(signup|session)(\?|$)/.test(req.url)) ||
    ((m === 'GET' || m === 'HEAD') && /^\/(pub\/|priv\/|storage\/|(session|events-stream|admin\/(generate_signup_token|events-stream))(\?|$))/.test(req.url))
  const message = 'Invalid path: bad percent-encoding'
  reply.code(400)
  if (plain) void reply.type('text/plain; charset=utf-8').send(message)
  else void reply.type('application/json; charset=utf-8').send({ error: 'InvalidPath', message })
}

/**
 * A request Node could not parse (an unknown method, headers over 16 KiB, broken framing)
 * reaches no route and no reply: it is answered here on the bare socket, in the contract's
 * JSON shape, and the connection is closed, as for 413, because the bytes that follow on it
 * cannot be trusted to start the next request.
 */
export function answerClientError(log: FastifyBaseLogger, err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [code, message]: [ErrorCode, string] =
    err.code === 'HPE_HEADER_OVERFLOW' ? ['HeadersTooLarge', 'Request headers are larger than 16 KiB']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? ['RequestTimeout', 'The request did not arrive in time']
        : ['BadRequest', 'Malformed HTTP request']
  const status = ERRORS[code]
  log.info({ status, code, reason: err.code }, 'request refused')
  if (!socket.writable) return void socket.destroy()
  const body = JSON.stringify({ error: code, message })
  const head = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n`
  socket.end(head + body, () => socket.destroy())
}
