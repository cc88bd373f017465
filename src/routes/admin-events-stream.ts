import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import type { HearthEvent } from '../events/event.js'
import { fail } from '../errors.js'
import { everything } from '../feed/visibility.js'
import { EVENTS_STREAM } from '../feed/wire.js'
import { publicKey, type RouteDoc } from '../openapi/route-doc.js'
import { ANY_USER } from '../subscriptions/filter.js'
import { parseFirehoseCursor, parseFirehoseQuery } from '../subscriptions/firehose.js'
import { streamFilters, streamPathMatches } from '../subscriptions/events-stream-query.js'
import { adminHeaders, requireAdminPassword } from './admin-password.js'
import { streamFrames, streamOptions } from './events-stream.js'
import { openReverseStream, openStream } from './stream.js'
import { queryString } from './user.js'

/** The query's shape, for the document; validation is parseFirehoseQuery, upstream's order and texts. */
const query = z.object({
  user: z.array(publicKey).optional().describe('repeatable, up to 50: the users followed; none: every user'),
  cursor: z.string().optional().describe('one cursor for the whole log (exclusive; decimal or a 13-character id); with reverse, the events before it'),
  path: z.array(z.string()).optional().describe('repeatable: ending in `/` is a folder and below, otherwise one file; default: every path, `/priv/` included'),
  ...streamOptions.shape,
})
const doc: RouteDoc = {
  summary: 'Every event of every user, /priv/ included: the admin firehose (only when ADMIN_PASSWORD is set)',
  tag: 'feeds',
  query,
  headers: adminHeaders,
  responses: { 200: streamFrames },
  errors: [400, 401, 404, 429],
}

/**
 * `GET /admin/events-stream`: upstream's admin event stream (src/subscriptions/firehose.ts),
 * the frames and limits of `/events-stream` read through the same engine, by a viewer that
 * sees everything. Registered by `adminRoutes`, so it exists only with ADMIN_PASSWORD.
 */
export async function adminEventsStreamRoute(app: FastifyInstance, ctx: Context, password: string): Promise<void> {
  app.get('/admin/events-stream', { config: { plainErrors: true, doc } }, async (req, reply) => {
    requireAdminPassword(req, password)
    await firehose(ctx, req, reply)
  })
}

async function firehose(ctx: Context, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const query = parseFirehoseQuery(queryString(req.url))
  for (const user of query.users) if (!(await ctx.users.exists(user))) fail('NotFound', 'Not Found')
  const cursor = query.cursor === undefined ? undefined : parseFirehoseCursor(query.cursor)
  const users = query.users.length === 0 ? undefined : new Set(query.users)
  const onlyUser = query.users.length === 1 ? query.users[0] : undefined
  const accepts = (ev: HearthEvent) => (users === undefined || users.has(ev.user)) && streamPathMatches(query.paths, ev.path)
  const spec = { onlyUser, limit: query.limit, canSee: everything, accepts }
  // as numbers: seqs stay far below 2^53, where rounding a larger cursor changes no comparison
  if (query.reverse) return openReverseStream(ctx, req, reply, { ...spec, before: cursor === undefined ? undefined : Number(cursor) })
  // a cursor past the head: nothing to replay, then whatever comes next
  const after = cursor === undefined ? 0 : Math.min(Number(cursor), ctx.events.head)
  openStream(ctx, req, reply, {
    ...spec, wire: EVENTS_STREAM, after: Math.max(after, ctx.events.floor - 1), live: query.live,
    filters: streamFilters(query.users.length === 0 ? [ANY_USER] : query.users, query.paths),
  })
}
