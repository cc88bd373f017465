import type { FastifyInstance } from 'fastify'
import type { Context } from '../context.js'
import { send } from './errors.js'

/**
 * `GET /healthz`: the process serves. `GET /readyz`: it can do its work (the storage answers,
 * the writer is not stuck); a load balancer or orchestrator sends traffic only while it is 200.
 */
export async function healthRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (req, reply) => {
    const reason = await ctx.ready()
    if (reason === undefined) return { status: 'ok' }
    req.log.warn({ reason }, 'not ready')
    send(req, reply, 503, 'NotReady', reason)
    return reply
  })
}
