import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Context } from '../context.js'
import type { Headers, OpenOptions } from '../feed/engine.js'
import type { ReverseSpec } from '../feed/reverse.js'
import type { SnapshotToken } from '../feed/snapshot-frames.js'
import type { SseStream } from '../feed/sse.js'
import { markStream, noteUser } from './observe.js'

/**
 * Hands a validated request over to the feed engine: takes a per-address slot, detaches the
 * response from Fastify (the stream writes to the socket itself) and keeps the CORS headers
 * already set on the reply.
 */
export function openStream(
  ctx: Context, req: FastifyRequest, reply: FastifyReply, opts: Omit<OpenOptions, 'headers'>, snapshot?: { resume?: SnapshotToken },
): SseStream {
  const release = ctx.limiter.acquire(req.ip)
  markStream(req)
  if (opts.onlyUser !== undefined) noteUser(req, opts.onlyUser)
  reply.hijack()
  const headers = reply.getHeaders() as Headers
  const stream = snapshot === undefined ? ctx.feed.open(reply.raw, { ...opts, headers }).stream : ctx.feed.openSnapshot(reply.raw, { ...opts, headers, ...snapshot })
  stream.onClose(release)
  if (opts.session !== undefined && !stream.closed) void guardSession(ctx, stream, opts.session).catch(() => stream.end())
  return stream
}

/** The same for a newest-first replay (`/events-stream?reverse=true`): its slot is given back when it ends. */
export function openReverseStream(ctx: Context, req: FastifyRequest, reply: FastifyReply, spec: ReverseSpec): void {
  const release = ctx.limiter.acquire(req.ip)
  markStream(req)
  if (spec.onlyUser !== undefined) noteUser(req, spec.onlyUser)
  reply.hijack()
  ctx.feed.openReverse(reply.raw, reply.getHeaders() as Headers, spec).onClose(release)
}

/**
 * A stream that sees `/priv/` events lives only as long as the session that opened it. Once
 * registered it checks the session again: a sign-out heard between the route's check and the
 * registration (from another instance, say) found no stream to end, and would be lost. It ends
 * when the session expires (`SESSION_TTL`); the look-up at that moment signs the session out
 * everywhere, which ends its other streams too.
 */
async function guardSession(ctx: Context, stream: SseStream, secret: string): Promise<void> {
  const session = await ctx.sessions.get(secret)
  if (session === undefined) return stream.end()
  const left = ctx.sessions.timeLeft(session)
  if (left === undefined || stream.closed) return
  const timer = setTimeout(() => {
    stream.end()
    void ctx.sessions.get(secret).catch(() => {})
  }, left)
  timer.unref()
  stream.onClose(() => clearTimeout(timer))
}
