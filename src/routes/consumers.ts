import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { fromSchema, parseDefinition } from '../consumers/definition.js'
import { mayRead } from '../consumers/matcher.js'
import { json, userHeaders, userQuery, type RouteDoc } from '../openapi/route-doc.js'
import { consumerAcksRoutes } from './consumers-acks.js'
import { consumerEventsRoute } from './consumers-events.js'
import { consumerOf, idParam, jsonBody, ownerDoc, requireOwner, stateAnswer, stateSchema, tooMany } from './consumers-common.js'

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
  const consumers = ctx.consumerService
  app.put('/consumers/:id', { config: { doc: docs.put } }, async (req, reply) => {
    const owner = await requireOwner(ctx, req)
    const id = idParam(req)
    const definition = await jsonBody(req, parseDefinition)
    const done = await consumers.create(owner.user, owner.session, id, definition)
    if ('retryAfter' in done) tooMany(reply, done.retryAfter, done.message)
    return reply.code(done.created ? 201 : 200).send(consumers.state(done.record))
  })

  app.get('/consumers', { config: { doc: docs.list } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    return { consumers: (await consumers.list(owner.user)).filter((r) => mayRead(r, owner.session)).map((r) => consumers.state(r)) }
  })

  app.get('/consumers/:id', { config: { doc: docs.get } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    return consumers.state(await consumerOf(ctx, req, owner))
  })

  app.delete('/consumers/:id', { config: { doc: docs.delete } }, async (req, reply) => {
    const owner = await requireOwner(ctx, req)
    await consumerOf(ctx, req, owner)
    await consumers.delete(owner.user, idParam(req))
    return reply.code(204).send()
  })

  app.post('/consumers/:id/reset', { config: { doc: docs.reset } }, async (req) => {
    const owner = await requireOwner(ctx, req)
    const id = idParam(req)
    const { from } = await jsonBody(req, (b) => resetBody.parse(b))
    await consumerOf(ctx, req, owner)
    return consumers.state(await consumers.reset(owner.user, id, from))
  })

  await consumerAcksRoutes(app, ctx)
  await consumerEventsRoute(app, ctx)
}
