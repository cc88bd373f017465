import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { parseCursor } from 'hearth-homeserver-client/id'
import { json, type RouteDoc } from '../openapi/route-doc.js'
import { consumerOf, idParam, jsonBody, ownerDoc, requireOwner, stateAnswer } from './consumers-common.js'
import { checkReadable } from '../consumers/matcher.js'
import type { Delivered } from '../consumers/ledger.js'
import { queryObject, requestUser } from './user.js'

/** Ids one ack request may name, in all. */
const MAX_ACK_IDS = 10_000
/** The longest `acked` wait. */
const MAX_ACKED_WAIT_MS = 30_000

const ids = z.array(z.string()).max(MAX_ACK_IDS).optional()
const ackBody = z.object({ ack: ids, nak: ids, term: ids }).strict()
const ackedQuery = z.object({
  event: z.string().describe('an event id (or decimal seq)'),
  timeoutMs: z.string().regex(/^\d{1,5}$/, 'expected a number of ms up to 30000').transform(Number)
    .refine((n) => n <= MAX_ACKED_WAIT_MS, 'expected a number of ms up to 30000').optional().describe('wait up to this long (0 to 30000; default 0)'),
  'pubky-host': z.string().optional(),
})

const docs: Record<string, RouteDoc> = {
  ack: {
    summary: 'Acknowledge events: ack (done), nak (deliver again now), term (dead now)', tag: 'consumers', ...ownerDoc,
    body: { type: 'application/json', description: '{"ack":[ids], "nak":[ids], "term":[ids]}, each optional, at most 10000 ids in all; a nak or term may name the delivery it is about as "<id>:<deliveries>" (the deliveries of its frame): it is then passed over once the event went out again', required: true },
    responses: { 200: stateAnswer('its state after the acks') }, errors: [400, 401, 403, 404, 413],
  },
  dead: {
    summary: "A consumer's dead letters", tag: 'consumers', ...ownerDoc,
    responses: { 200: json(z.object({ events: z.array(z.object({ deliveries: z.number(), reason: z.enum(['maxDeliver', 'term']) }).catchall(z.unknown())) }), 'oldest first: each event (as /subscribe sends it) with its deliveries and why it is dead; an event pruned since has only its id and seq') },
    errors: [400, 401, 403, 404],
  },
  acked: {
    summary: 'Whether a consumer has processed an event, waiting up to timeoutMs', tag: 'consumers', ...ownerDoc, query: ackedQuery,
    responses: { 200: json(z.object({ acked: z.boolean(), matched: z.boolean(), ackFloor: z.string() }), 'at once when processed, or when the event does not match the filters; else acked:false at the timeout') },
    errors: [400, 401, 403, 404],
  },
}

export async function consumerAcksRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  const consumers = ctx.consumerService
  app.post('/consumers/:id/ack', { config: { doc: docs.ack } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    const id = idParam(req)
    const body = await jsonBody(req, (b) => ackBody.parse(b))
    const acks = { ack: (body.ack ?? []).map(seqOf), nak: (body.nak ?? []).map(deliveredOf), term: (body.term ?? []).map(deliveredOf) }
    if (acks.ack.length + acks.nak.length + acks.term.length > MAX_ACK_IDS) fail('InvalidBody', `At most ${MAX_ACK_IDS} ids per request`)
    return consumers.state(await consumers.ack(owner.user, id, acks, owner.session))
  })

  app.get('/consumers/:id/dead', { config: { doc: docs.dead } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    return { events: await consumers.dead(await consumerOf(ctx, req, owner)) }
  })

  app.get('/consumers/:id/acked', { config: { doc: docs.acked } }, async (req) => {
    const q = ackedQuery.parse(queryObject(req.url))
    // only the owner asks, unless the consumer shares its progress: anyone else is refused as
    // the owner's routes refuse (401, 403) whether the consumer exists or not, so the answer
    // tells nobody which ids are in use
    const found = await consumers.find(requestUser(req), idParam(req))
    if (found === undefined || !found.definition.shareProgress) {
      const owner = await requireOwner(ctx, req)
      if (found === undefined) fail('NotFound', 'No such consumer')
      checkReadable(found, owner.session)
    }
    return consumers.acked(found, seqOf(q.event), q.timeoutMs ?? 0, () => req.socket.destroyed)
  })
}

/** An event id (or decimal seq); one past any seq a log reaches here is Number.MAX_SAFE_INTEGER, past every head. */
function seqOf(text: string): number {
  const seq = parseCursor(text)
  if (seq === undefined || seq === 0n) fail('InvalidCursor', `Invalid event id: ${short(text)}`)
  return seq > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(seq)
}

/** What an error message quotes of an id: its first 40 characters. */
function short(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text
}

/** A nak's or term's `<id>` or `<id>:<deliveries>`: the event, and the delivery of it the worker had (the `deliveries` of its frame). */
function deliveredOf(text: string): Delivered {
  const colon = text.indexOf(':')
  if (colon === -1) return { seq: seqOf(text) }
  const deliveries = text.slice(colon + 1)
  if (!/^[1-9]\d{0,8}$/.test(deliveries)) fail('InvalidBody', `Invalid delivery count in ${short(text)}`)
  return { seq: seqOf(text.slice(0, colon)), deliveries: Number(deliveries) }
}
