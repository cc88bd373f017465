import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Context } from '../context.js'
import type { HearthEvent } from '../events/event.js'
import {
  authorizeStreamPaths, parseEventsStreamQuery, resolveStreamCursors, streamFilters, streamPathMatches,
} from '../subscriptions/upstream.js'
import type { Headers } from '../feed/engine.js'
import { sessionFor } from '../auth/request.js'
import { covers } from '../auth/capabilities.js'
import { visibility } from '../feed/visibility.js'
import { queryString } from './user.js'
import { openStream } from './stream.js'

/**
 * `GET /events-stream`: upstream's SSE feed, with its query, its error texts and its frames
 * (plus an `id:` line). Each user may carry its own cursor; replay starts from the smallest
 * and skips each user's events up to its own.
 */
export async function eventsStreamRoute(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/events-stream', { config: { plainErrors: true } }, (req, reply) => eventsStream(ctx, req, reply))
}

async function eventsStream(ctx: Context, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const query = parseEventsStreamQuery(queryString(req.url))
  const first = query.users[0]!.user
  const session = await sessionFor(ctx, req, first)
  const paths = authorizeStreamPaths(query, session && { user: session.user, canRead: (p) => covers(session.capabilities, p, 'r') })
  const cursors = await resolveStreamCursors(query.users, async (u) => (await ctx.kv.get('users', u)) !== undefined)
  const users = [...cursors.keys()]
  const onlyUser = users.length === 1 ? first : undefined
  const canSee = visibility(session, onlyUser)
  const head = ctx.events.head
  // as numbers: seqs stay far below 2^53, where rounding a larger cursor changes no comparison
  const bounds = new Map([...cursors].map(([u, c]) => [u, c === undefined ? undefined : Number(c)]))
  const accepts = (ev: HearthEvent) => {
    if (!bounds.has(ev.user) || !streamPathMatches(paths, ev.path)) return false
    const c = bounds.get(ev.user)
    return c === undefined || (query.reverse ? ev.seq < c : ev.seq > c)
  }
  if (query.reverse) {
    const release = ctx.limiter.acquire(req.ip)
    reply.hijack()
    const stream = ctx.feed.openReverse(reply.raw, reply.getHeaders() as Headers, { onlyUser, limit: query.limit, canSee, accepts })
    return stream.onClose(release)
  }
  let after = head
  for (const c of cursors.values()) after = Math.min(after, c === undefined ? 0 : Number(c > BigInt(head) ? BigInt(head) : c))
  openStream(ctx, req, reply, {
    protocol: 'events-stream', after: Math.max(after, ctx.events.floor - 1), live: query.live, limit: query.limit,
    onlyUser, canSee, accepts, filters: streamFilters(users, paths),
  })
}
