import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Context } from '../context.js'
import type { HearthEvent } from '../events/event.js'
import {
  authorizeStreamPaths, parseEventsStreamQuery, resolveStreamCursors, streamFilters, streamPathMatches,
} from '../subscriptions/events-stream-query.js'
import { sessionCookie } from '../auth/request.js'
import { covers } from '../auth/capabilities.js'
import { publicOnly, visibility } from '../feed/visibility.js'
import { queryString } from './user.js'
import { openReverseStream, openStream } from './stream.js'
import { EVENTS_STREAM } from '../feed/wire.js'
import { sse, type RouteDoc } from '../openapi/route-doc.js'
import { z } from 'zod'

/**
 * The query's shape, for the document. Validation is upstream's own parser
 * (parseEventsStreamQuery), which must keep upstream's error texts and the order it checks in.
 * `streamOptions` is what every form of `/events-stream` takes besides users, cursors and paths.
 */
export const streamOptions = z.object({
  limit: z.string().regex(/^\+?[0-9]+$/).optional().describe('end after this many events (1 to 65535)'),
  live: z.enum(['true', '1', 'false', '0']).optional().describe('follow new events once the replay is done'),
  reverse: z.enum(['true', '1', 'false', '0']).optional().describe('newest first (not with live)'),
})
/** The frames of every form of `/events-stream`, for the document. */
export const streamFrames = sse('frames `event: PUT|DEL`, `data: pubky://<key><path>`, `data: cursor: <seq>`, `data: content_hash: <base64>` (PUT), and `id: <seq>`')
const query = z.object({
  user: z.array(z.string()).describe('repeatable, 1 to 50: `<key>` or `<key>:<cursor>` (exclusive; decimal or a 13-character id)'),
  path: z.array(z.string()).optional().describe('repeatable: ending in `/` is a folder and below, otherwise one file; default `/pub/`'),
  ...streamOptions.shape,
})
const doc: RouteDoc = {
  summary: 'The upstream SSE feed of some users',
  tag: 'feeds',
  query,
  headers: z.object({ cookie: z.string().optional().describe("the user's session, for paths under /priv/") }),
  responses: { 200: streamFrames },
  errors: [400, 401, 403, 404, 429],
}

/**
 * `GET /events-stream`: upstream's SSE feed, with its query, its error texts and its frames
 * (plus an `id:` line). Each user may carry its own cursor; replay starts from the smallest
 * and skips each user's events up to its own.
 */
export async function eventsStreamRoute(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/events-stream', { config: { plainErrors: true, doc } }, (req, reply) => eventsStream(ctx, req, reply))
}

async function eventsStream(ctx: Context, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const query = parseEventsStreamQuery(queryString(req.url))
  const first = query.users[0]!.user
  const viewer = await sessionCookie(ctx, req, first)
  const session = viewer?.session
  const paths = authorizeStreamPaths(query, session && { user: session.user, canRead: (p) => covers(session.capabilities, p, 'r') })
  const cursors = await resolveStreamCursors(query.users, (u) => ctx.users.exists(u))
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
  if (query.reverse) return openReverseStream(ctx, req, reply, { onlyUser, limit: query.limit, canSee, accepts })
  let after = head
  for (const c of cursors.values()) after = Math.min(after, c === undefined ? 0 : Number(c > BigInt(head) ? BigInt(head) : c))
  openStream(ctx, req, reply, {
    wire: EVENTS_STREAM, after: Math.max(after, ctx.events.floor - 1), live: query.live, limit: query.limit,
    onlyUser, canSee, accepts, filters: streamFilters(users, paths),
    session: canSee === publicOnly ? undefined : viewer?.secret,
  })
}
