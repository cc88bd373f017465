import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { json, type RouteDoc } from '../openapi/route-doc.js'
import { send } from './errors.js'

export const okBody = z.object({ status: z.literal('ok') })

const healthz: RouteDoc = {
  summary: 'Liveness: the process serves',
  tag: 'server',
  responses: { 200: json(okBody, 'serving') },
}
const readyz: RouteDoc = {
  summary: 'Readiness: the storage answers and the writer is not stuck',
  description: 'A 503 names the reason: a storage read failed or did not answer within 2 s, or one commit group has been in flight for 30 s.',
  tag: 'server',
  responses: { 200: json(okBody, 'ready') },
  errors: [503],
}

/**
 * `GET /healthz`: the process serves. `GET /readyz`: it can do its work (the storage answers,
 * the writer is not stuck); a load balancer or orchestrator sends traffic only while it is 200.
 */
export async function healthRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/healthz', { config: { doc: healthz } }, async () => ({ status: 'ok' }))
  app.get('/readyz', { config: { doc: readyz } }, async (req, reply) => {
    const reason = await ctx.ready()
    if (reason === undefined) return { status: 'ok' }
    req.log.warn({ reason }, 'not ready')
    send(req, reply, 503, 'NotReady', reason)
    return reply
  })
}
