import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import type { HearthEvent } from '../events/event.js'
import { fail } from '../errors.js'
import { parseCursor } from 'hearth-homeserver-client/id'
import { ANY_USER, filterMatches, parseFilters, type Filter } from '../subscriptions/filter.js'
import { sessionCookie } from '../auth/request.js'
import { publicOnly, visibility } from '../feed/visibility.js'
import { queryObject } from './user.js'
import { sse, type RouteDoc } from '../openapi/route-doc.js'
import { openStream } from './stream.js'
import type { SseStream } from '../feed/sse.js'
import { SUBSCRIBE } from '../feed/wire.js'
import { decodeToken } from '../feed/snapshot-frames.js'
import { recentStart } from '../feed/reverse.js'

/** The most events `recent=` may ask for: a page of a viewer, not a replay. */
const MAX_RECENT = 1000

const query = z.object({
  filter: z.array(z.string()).optional()
    .describe('repeatable, up to 64, a union: `<key or *><path>`, a trailing `*` makes a prefix; none means every public event'),
  lastSeq: z.string().optional().describe('resume after this id or decimal seq (exclusive); `0` replays from the start'),
  cursor: z.string().optional().describe('the same as lastSeq'),
  live: z.enum(['true', '1', 'false', '0']).optional().transform((v) => v !== 'false' && v !== '0')
    .describe('false: end the stream once caught up'),
  limit: z.string().regex(/^[1-9]\d{0,15}$/, 'expected a positive number').transform(Number).optional()
    .describe('end the stream after this many events'),
  snapshot: z.enum(['true', '1', 'false', '0']).optional().transform((v) => v === 'true' || v === '1')
    .describe('first every file the filters cover, as of one position, then `event: synced`, then the events after it (SPEC §13)'),
  recent: z.string().regex(/^[1-9]\d{0,3}$/, 'expected a number from 1 to 1000').transform(Number)
    .refine((n) => n <= MAX_RECENT, 'expected a number from 1 to 1000').optional()
    .describe('without a cursor: open with the newest matching events, up to this many (1 to 1000), then go on live'),
})
const headers = z.object({
  'last-event-id': z.string().optional().describe('resume after this id (what EventSource sends on reconnect); wins over the query'),
  cookie: z.string().optional().describe("the owner's session, for /priv/ events of one user"),
})
const frames = 'frames `id: <13-char id>`, `event: PUT|DEL`, `data: {"id","seq","type","user","path","uri","contentHash","size","ts"}`; ' +
  'first `retry: 2000`; `: keepalive` comments; data-less `id:` frames while scanning; `event: reset` when the cursor is below the floor'
const docs: Record<string, RouteDoc> = {
  query: {
    summary: 'Follow the log, filtered, resumable (SSE)',
    tag: 'feeds',
    query,
    headers,
    responses: { 200: sse(frames) },
    errors: [400, 429],
  },
  path: {
    summary: 'Follow the log with one filter in the path (SSE)',
    tag: 'feeds',
    params: z.object({ filter: z.string().describe('one filter, as in ?filter=') }),
    query,
    headers,
    responses: { 200: sse(frames) },
    errors: [400, 429],
  },
}

/**
 * `GET /subscribe?filter=…` and `GET /subscribe/<filter>`: the subscription stream. Without a
 * cursor it is live from now, or with `recent=N` starts just before the N newest events it
 * matches; with one (Last-Event-ID, lastSeq= or cursor=; id or decimal, exclusive) it replays
 * what it missed first, and `recent` is ignored, so a reconnect resumes where it stopped.
 */
export async function subscribeRoutes(app: FastifyInstance, ctx: Context, opts: SubscribeOptions = { snapshots: true }): Promise<void> {
  const handler = (req: FastifyRequest, reply: FastifyReply) => subscribe(ctx, req, reply, opts)
  app.get('/subscribe', { config: { doc: docs.query } }, handler)
  app.get('/subscribe/*', { config: { doc: docs.path } }, handler)
}

export interface SubscribeOptions {
  snapshots: boolean
  /**
   * A relay's: the stream's filters are its wants while it is open. Called once the request
   * is valid and before the stream opens, it may refuse (a 4xx); `attach` hands it the stream.
   */
  hold?: (filters: readonly Filter[]) => { attach(stream: SseStream): void; release(): void }
}

async function subscribe(ctx: Context, req: FastifyRequest, reply: FastifyReply, opts: SubscribeOptions): Promise<void> {
  const q = query.parse(queryObject(req.url, ['filter']))
  if (q.snapshot && !opts.snapshots) fail('SnapshotUnsupported', 'A relay keeps events, not files: it has no snapshot to send')
  const texts = q.filter ?? []
  const inPath = (req.params as { '*'?: string })['*']
  if (inPath !== undefined && inPath !== '') texts.push(inPath)
  const filters = parseFilters(texts)
  const { live, limit } = q
  const lastEventId = headers.parse(req.headers)['last-event-id'] || undefined
  const cursorText = lastEventId ?? q.lastSeq ?? q.cursor
  const head = ctx.events.head
  let after = head
  const resume = q.snapshot && cursorText?.startsWith('~') ? decodeToken(cursorText) : undefined
  if (resume !== undefined) {
    if (Math.max(resume.at, resume.kind === 'events' ? resume.upTo : 0) > head) {
      fail('FutureCursor', `Cursor ${cursorText} is past the head of the log`, { head: String(head) })
    }
  } else if (cursorText !== undefined) {
    const cursor = parseCursor(cursorText)
    if (cursor === undefined) fail('InvalidCursor', `Invalid cursor: ${cursorText}`)
    if (cursor > BigInt(head)) fail('FutureCursor', `Cursor ${cursorText} is past the head of the log`, { head: String(head) })
    // below the floor: the stream opens with `event: reset` and goes on from the floor
    after = Number(cursor)
  }
  const onlyUser = singleUser(filters)
  const viewer = onlyUser === undefined ? undefined : await sessionCookie(ctx, req, onlyUser)
  const canSee = visibility(viewer?.session, onlyUser)
  const accepts = (ev: HearthEvent) => filters.some((f) => filterMatches(f, ev))
  if (cursorText === undefined && q.recent !== undefined && !q.snapshot) after = await recentStart(ctx.events, { onlyUser, canSee, accepts }, q.recent)
  const spec = {
    wire: SUBSCRIBE, after, live, limit, onlyUser, filters, canSee, accepts,
    session: canSee === publicOnly ? undefined : viewer?.secret,
    // live events reach this stream only through the tables, which applied the filters
    acceptsLive: () => true,
  }
  // a snapshot, new or resumed; after `synced` a reconnect sends a plain id and resumes live
  const snapshot = q.snapshot && (cursorText === undefined || resume !== undefined)
  const held = opts.hold?.(filters)
  let stream: SseStream
  try {
    stream = openStream(ctx, req, reply, spec, snapshot ? { resume } : undefined)
  } catch (err) {
    held?.release()
    throw err
  }
  held?.attach(stream)
}

/** The user every filter names, when they all name the same one. */
function singleUser(filters: readonly Filter[]): string | undefined {
  const user = filters[0]?.user
  return user !== undefined && user !== ANY_USER && filters.every((f) => f.user === user) ? user : undefined
}
