import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { parseCursor } from '../events/id.js'
import { ANY_USER, filterMatches, parseFilters, type Filter } from '../subscriptions/filter.js'
import { sessionFor } from '../auth/request.js'
import { visibility } from '../feed/visibility.js'
import { queryString } from './user.js'
import { openStream } from './stream.js'

const options = z.object({
  live: z.enum(['true', '1', 'false', '0']).optional().transform((v) => v !== 'false' && v !== '0'),
  limit: z.string().regex(/^[1-9]\d{0,15}$/, 'expected a positive number').transform(Number).optional(),
})

/**
 * `GET /subscribe?filter=…` and `GET /subscribe/<filter>`: the subscription stream. Without a
 * cursor it is live from now; with one (Last-Event-ID, lastSeq= or cursor=; id or decimal,
 * exclusive) it replays what it missed first.
 */
export async function subscribeRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  const handler = (req: FastifyRequest, reply: FastifyReply) => subscribe(ctx, req, reply)
  app.get('/subscribe', handler)
  app.get('/subscribe/*', handler)
}

async function subscribe(ctx: Context, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const params = new URLSearchParams(queryString(req.url))
  const texts = params.getAll('filter')
  const inPath = (req.params as { '*'?: string })['*']
  if (inPath !== undefined && inPath !== '') texts.push(inPath)
  const filters = parseFilters(texts)
  const { live, limit } = options.parse(Object.fromEntries(params))
  const cursorText = header(req, 'last-event-id') ?? params.get('lastSeq') ?? params.get('cursor') ?? undefined
  const head = ctx.events.head
  let after = head
  if (cursorText !== undefined) {
    const cursor = parseCursor(cursorText)
    if (cursor === undefined) fail('InvalidCursor', `Invalid cursor: ${cursorText}`)
    if (cursor > BigInt(head)) fail('FutureCursor', `Cursor ${cursorText} is past the head of the log`, { head: String(head) })
    // below the floor: the stream opens with `event: reset` and goes on from the floor
    after = Number(cursor)
  }
  const onlyUser = singleUser(filters)
  const session = onlyUser === undefined ? undefined : await sessionFor(ctx, req, onlyUser)
  openStream(ctx, req, reply, {
    protocol: 'subscribe', after, live, limit, onlyUser, filters,
    canSee: visibility(session, onlyUser),
    accepts: (ev) => filters.some((f) => filterMatches(f, ev)),
    // live events reach this stream only through the tables, which applied the filters
    acceptsLive: () => true,
  })
}

/** The user every filter names, when they all name the same one. */
function singleUser(filters: readonly Filter[]): string | undefined {
  const user = filters[0]?.user
  return user !== undefined && user !== ANY_USER && filters.every((f) => f.user === user) ? user : undefined
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name]
  return typeof v === 'string' && v !== '' ? v : undefined
}
