import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Context } from '../context.js'
import type { OpenOptions } from '../feed/engine.js'
import { markStream, noteUser } from './observe.js'

/**
 * Hands a validated request over to the feed engine: takes a per-address slot, detaches the
 * response from Fastify (the stream writes to the socket itself) and keeps the CORS headers
 * already set on the reply.
 */
export function openStream(ctx: Context, req: FastifyRequest, reply: FastifyReply, opts: Omit<OpenOptions, 'headers'>): void {
  const release = ctx.limiter.acquire(req.ip)
  markStream(req)
  if (opts.onlyUser !== undefined) noteUser(req, opts.onlyUser)
  reply.hijack()
  const headers = reply.getHeaders() as Record<string, string | number | string[]>
  const sub = ctx.feed.open(reply.raw, { ...opts, headers })
  sub.stream.onClose(release)
}
