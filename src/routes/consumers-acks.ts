import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import type { HearthEvent } from '../events/event.js'
import { dataOf } from '../events/stored.js'
import { isPrivate } from '../feed/visibility.js'
import type { ConsumerRecord } from '../kv/store.js'
import { parseCursor } from 'hearth-homeserver-client/id'
import { acknowledge, ackFloor } from '../consumers/ledger.js'
import { matcherOf } from '../consumers/matcher.js'
import { processed } from '../consumers/view.js'
import { idOf } from 'hearth-homeserver-client/id'
import { json, type RouteDoc } from '../openapi/route-doc.js'
import { sessionCookie } from '../auth/request.js'
import { consumerOf, jsonBody, ownerDoc, requireOwner, stateAnswer, stateNow } from './consumers-common.js'
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
    body: { type: 'application/json', description: '{"ack":[ids], "nak":[ids], "term":[ids]}, each optional, at most 10000 ids in all', required: true },
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
  app.post('/consumers/:id/ack', { config: { doc: docs.ack } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    const { id } = await consumerOf(ctx, req, owner.user)
    const body = await jsonBody(req, (b) => ackBody.parse(b))
    const seqs = (list: string[] | undefined) => (list ?? []).map(seqOf)
    const acks = { ack: seqs(body.ack), nak: seqs(body.nak), term: seqs(body.term) }
    if (acks.ack.length + acks.nak.length + acks.term.length > MAX_ACK_IDS) fail('InvalidBody', `At most ${MAX_ACK_IDS} ids per request`)
    // grouped with the other acks of the moment: one transaction for all of them
    const done = await ctx.consumers.updates.apply(owner.user, id, (r) => {
      const a = acknowledge(r, acks)
      return { record: a.record, result: a }
    })
    if (done === undefined) fail('NotFound', 'No such consumer')
    ctx.metrics.consumers.acked(done.result.acked)
    if (done.result.dead.length > 0) ctx.metrics.consumers.dead('term', done.result.dead.length)
    ctx.consumers.changed(owner.user, id)
    return stateNow(ctx, done.record)
  })

  app.get('/consumers/:id/dead', { config: { doc: docs.dead } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    const record = await consumerOf(ctx, req, owner.user)
    const events = await Promise.all(record.dead.map(async (d) => {
      const ev = await eventAt(ctx, d.seq)
      const base = ev === undefined ? { id: idOf(d.seq), seq: String(d.seq) } : (JSON.parse(dataOf(ev)) as object)
      return { ...base, deliveries: d.deliveries, reason: d.reason }
    }))
    return { events }
  })

  app.get('/consumers/:id/acked', { config: { doc: docs.acked } }, async (req) => {
    const q = ackedQuery.parse(queryObject(req.url))
    const user = requestUser(req)
    let record = await consumerOf(ctx, req, user)
    // only the owner asks, unless the consumer shares its progress
    const asker = await sessionCookie(ctx, req, user)
    const isOwner = asker?.session.user === user
    if (!record.definition.shareProgress && !isOwner) await requireOwner(ctx, req)
    const seq = seqOf(q.event)
    if (seq > ctx.events.head) fail('FutureCursor', `Event ${q.event} is past the head of the log`, { head: String(ctx.events.head) })
    const ev = await eventAt(ctx, seq)
    const m = matcherOf(record)
    // a private event is the owner's business only: to anyone else it matches nothing
    const matched = ev === undefined || (m.canSee(ev) && m.accepts(ev) && (isOwner || !isPrivate(ev)))
    const answer = (r: ConsumerRecord, acked: boolean) => ({ acked, matched, ackFloor: idOf(ackFloor(r)) })
    if (!matched) return answer(record, seq <= ackFloor(record))
    const deadline = Date.now() + (q.timeoutMs ?? 0)
    for (;;) {
      const done = processed(record, seq)
      if (done === true || done === 'dead') return answer(record, done === true)
      const left = deadline - Date.now()
      if (left <= 0) return answer(record, false)
      await ctx.consumers.changeOrTimeout(user, record.id, left)
      const now = await ctx.store.consumer(user, record.id)
      if (now === undefined) fail('NotFound', 'No such consumer')
      record = now
    }
  })
}

function seqOf(text: string): number {
  const seq = parseCursor(text)
  if (seq === undefined || seq === 0n) fail('InvalidCursor', `Invalid event id: ${text}`)
  return Number(seq)
}

/** The event with this seq, if the log still holds it. */
async function eventAt(ctx: Context, seq: number): Promise<HearthEvent | undefined> {
  return (await ctx.store.readLog(seq - 1, seq, 1)).events[0]
}
