import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { parseDecimal } from 'hearth-homeserver-client/id'
import { text, type RouteDoc } from '../openapi/route-doc.js'
import { publicOnly } from '../feed/visibility.js'

const query = z.object({
  cursor: z.string().optional().describe('exclusive: events after this decimal seq (default 0)'),
  limit: z.string().regex(/^\d+$/, 'expected a number').transform((s) => Math.min(Number(s), 1000)).optional().default(100)
    .describe('at most this many lines (default 100, at most 1000)'),
})
const doc: RouteDoc = {
  summary: 'The upstream text feed of public events',
  tag: 'feeds',
  query,
  responses: {
    200: text(
      'lines `PUT|DEL pubky://<key><path>`, then `cursor: <last seq>`; empty when nothing follows the cursor',
      'PUT pubky://<key>/pub/a.txt\ncursor: 42',
    ),
  },
  errors: [400],
}

/**
 * `GET /events/`: the upstream text feed. Public events after the decimal cursor, one
 * `PUT|DEL pubky://<z32><path>` line each, then `cursor: <last seq>`; after events that are
 * not public, the cursor line alone (SPEC §6.1); an empty body when nothing follows.
 */
export async function eventsRoute(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/events/', { config: { doc } }, async (req, reply) => {
    const q = query.parse(req.query)
    const cursor = q.cursor === undefined || q.cursor === '' ? 0n : parseDecimal(q.cursor)
    if (cursor === undefined) fail('InvalidCursor', 'cursor must be a decimal event number')
    const after = cursor > BigInt(ctx.events.head) ? ctx.events.head : Number(cursor)
    const page = await ctx.feed.poll(after, q.limit, publicOnly)
    reply.type('text/plain; charset=utf-8')
    if (page.cursor === after) return ''
    return [...page.events.map((ev) => `${ev.type} pubky://${ev.user}${ev.path}`), `cursor: ${page.cursor}`].join('\n')
  })
}
