import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ZodError } from 'zod'
import { HearthError } from '../errors.js'

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
  const fault = status >= 500 && !(err instanceof HearthError && err.code !== 'Internal')
  if (fault) req.log.error({ err }, 'request failed')
  else if (status >= 500) req.log.warn({ status, code, reason: message }, 'request refused')
  else req.log.info({ status, code, reason: message }, 'request refused')
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

function fastifyCode(status: number): string {
  return { 413: 'PayloadTooLarge', 415: 'UnsupportedMediaType', 429: 'TooManyRequests', 431: 'HeadersTooLarge' }[status] ?? 'BadRequest'
}

export function send(req: FastifyRequest, reply: FastifyReply, status: number, code: string, message: string, details?: Record<string, unknown>): void {
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy()
    return
  }
  reply.code(status)
  // A refused body was not read to its end: the connection cannot carry another request.
  if (status === 413) reply.header('connection', 'close')
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
    ((m === 'GET' || m === 'HEAD') && /^\/(pub\/|priv\/|storage\/|(session|events-stream|admin\/generate_signup_token)(\?|$))/.test(req.url))
  const message = 'Invalid path: bad percent-encoding'
  reply.code(400)
  if (plain) void reply.type('text/plain; charset=utf-8').send(message)
  else void reply.type('application/json; charset=utf-8').send({ error: 'InvalidPath', message })
}
