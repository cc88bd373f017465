import type { FastifyInstance } from 'fastify'
import type { Context } from '../context.js'
import type { Headers } from '../feed/engine.js'
import { SseStream } from '../feed/sse.js'
import { sse, type RouteDoc } from '../openapi/route-doc.js'
import { consumerOf, ownerDoc, requireOwner } from './consumers-common.js'
import { markStream } from './observe.js'

const doc: RouteDoc = {
  summary: "A worker's stream of a consumer (SSE)", tag: 'consumers', ...ownerDoc,
  description: 'Streams open on one consumer share its work: each event is held by one stream at a time. ' +
    'Signing out ends the stream, not the consumer.',
  responses: {
    200: sse('the frames of /subscribe (`id`, `event: PUT|DEL`, `data`), whose data adds `"deliveries": n` (1 the first time); ' +
      '`event: reset` when retention overtook the consumer; `: keepalive` comments'),
  },
  errors: [400, 401, 403, 404, 429],
}

/** Streams written by hand rather than by the feed engine, for the write counter they share. */
const tally = { writes: 0 }

/** `GET /consumers/<ulid>/events`: the owner's worker joins the consumer's streams. */
export async function consumerEventsRoute(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/consumers/:id/events', { config: { doc } }, async (req, reply) => {
    const owner = await requireOwner(ctx, req)
    const record = await consumerOf(ctx, req, owner)
    // HEAD (which Fastify answers for every GET route): the headers alone, and no worker
    // joins, since a HEAD answer carries no body: events leased to it would reach nobody
    if (req.method === 'HEAD') return reply.type('text/event-stream').send()
    const release = ctx.limiter.acquire(req.ip)
    markStream(req)
    reply.hijack()
    const stream = new SseStream(reply.raw, reply.getHeaders() as Headers, tally)
    stream.onClose(release)
    ctx.consumers.open(record, stream, owner.secret)
    // a sign-out heard between the check above and the stream's registration found nothing to end
    if ((await ctx.sessions.get(owner.secret)) === undefined) stream.end()
  })
}
