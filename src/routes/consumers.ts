import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { formatCapabilities } from '../auth/capabilities.js'
import type { ConsumerRecord } from '../kv/store.js'
import { checkConsumerId, fromSchema, parseDefinition, position, sameDefinition } from '../consumers/definition.js'
import { reposition } from '../consumers/ledger.js'
import { json, userHeaders, userQuery, type RouteDoc } from '../openapi/route-doc.js'
import { consumerAcksRoutes } from './consumers-acks.js'
import { consumerEventsRoute } from './consumers-events.js'
import { consumerOf, consumerParams, jsonBody, ownerDoc, requireOwner, stateAnswer, stateNow, stateSchema, tooMany } from './consumers-common.js'

/** How long a user whose consumers are at MAX_CONSUMERS_PER_USER is told to wait. */
const FULL_RETRY_S = 60

const resetBody = z.object({ from: fromSchema }).strict()

const docs: Record<string, RouteDoc> = {
  put: {
    summary: 'Create a durable consumer (idempotent)', tag: 'consumers', ...ownerDoc,
    body: {
      type: 'application/json',
      description: '{"filters":[…1 to 64 /subscribe filters; default ["*"]], "from":"new"|"start"|{"after":"<id or seq>"} (default "new"), ' +
        '"ack":"explicit"|"automatic" (default explicit), "ackWaitMs":100…3600000 (30000), "maxDeliver":1…1000 (5), "maxPending":1…10000 (1000), "shareProgress":false}',
    },
    responses: { 200: stateAnswer('it exists with this definition'), 201: stateAnswer('created') },
    errors: [400, 401, 403, 409, 413, 429],
  },
  list: {
    summary: "The owner's consumers", tag: 'consumers', query: userQuery, headers: userHeaders,
    responses: { 200: json(z.object({ consumers: z.array(stateSchema) }), 'their states, by id') }, errors: [400, 401, 403],
  },
  get: { summary: 'A consumer: its definition and where it stands', tag: 'consumers', ...ownerDoc, responses: { 200: stateAnswer('its state') }, errors: [400, 401, 403, 404] },
  delete: { summary: 'Delete a consumer (its streams end)', tag: 'consumers', ...ownerDoc, responses: { 204: { description: 'deleted' } }, errors: [400, 401, 403, 404] },
  reset: {
    summary: 'Move a consumer: a new position, and nothing pending', tag: 'consumers', ...ownerDoc,
    body: { type: 'application/json', description: '{"from": "new" | "start" | {"after": "<id or seq>"}}', required: true },
    responses: { 200: stateAnswer('its state after the move') }, errors: [400, 401, 403, 404],
  },
}

/**
 * Durable consumers (SPEC §12): `/consumers` and `/consumers/<ulid>` here, acks in
 * consumers-acks.ts, the stream in consumers-events.ts. Every route needs the owner's session
 * (pubky-host and cookie, as storage routes), except `acked` on a consumer that shares its progress.
 */
export async function consumerRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  app.put('/consumers/:id', { config: { doc: docs.put } }, async (req, reply) => {
    const owner = await requireOwner(ctx, req)
    const id = checkConsumerId(consumerParams.parse(req.params).id, Date.now())
    const definition = await jsonBody(req, parseDefinition)
    const answer = (record: ConsumerRecord, status: number) => {
      if (!sameDefinition(record.definition, definition)) fail('ConsumerExists', 'A consumer with this id exists with another definition')
      return reply.code(status).send(stateNow(ctx, record))
    }
    const existing = await ctx.store.consumer(owner.user, id)
    if (existing !== undefined) return answer(existing, 200)
    const wait = ctx.consumerRate.take(owner.user)
    if (wait !== undefined) tooMany(reply, wait, 'Too many consumers created lately (CONSUMER_CREATE_RATE)')
    const record: ConsumerRecord = {
      owner: owner.user, id, createdAt: Date.now(), definition, capabilities: formatCapabilities(owner.session.capabilities),
      cursor: position(definition.from, ctx.events.head, ctx.events.floor), outstanding: [], dead: [],
    }
    const created = await ctx.store.createConsumer(record, ctx.config.maxConsumersPerUser)
    if (created === 'full') tooMany(reply, FULL_RETRY_S, `At most ${ctx.config.maxConsumersPerUser} consumers per user (MAX_CONSUMERS_PER_USER)`)
    if (created === 'exists') return answer((await ctx.store.consumer(owner.user, id))!, 200)
    return reply.code(201).send(stateNow(ctx, record))
  })

  app.get('/consumers', { config: { doc: docs.list } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    return { consumers: (await ctx.store.consumers(owner.user)).map((r) => stateNow(ctx, r)) }
  })

  app.get('/consumers/:id', { config: { doc: docs.get } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    return stateNow(ctx, await consumerOf(ctx, req, owner.user))
  })

  app.delete('/consumers/:id', { config: { doc: docs.delete } }, async (req, reply) => {
    const owner = await requireOwner(ctx, req)
    const record = await consumerOf(ctx, req, owner.user)
    if (!(await ctx.store.deleteConsumer(owner.user, record.id))) fail('NotFound', 'No such consumer')
    ctx.consumers.deleted(owner.user, record.id)
    return reply.code(204).send()
  })

  app.post('/consumers/:id/reset', { config: { doc: docs.reset } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    const { id } = await consumerOf(ctx, req, owner.user)
    const { from } = await jsonBody(req, (b) => resetBody.parse(b))
    const cursor = position(from, ctx.events.head, ctx.events.floor)
    const done = await ctx.consumers.updates.apply(owner.user, id, (r) => ({ record: reposition(r, cursor), result: undefined }))
    if (done === undefined) fail('NotFound', 'No such consumer')
    ctx.consumers.changed(owner.user, id)
    return stateNow(ctx, done.record)
  })

  await consumerAcksRoutes(app, ctx)
  await consumerEventsRoute(app, ctx)
}
