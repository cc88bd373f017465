import type { FastifyInstance } from 'fastify'
import type { Context } from '../context.js'

/** `GET /info`: what this homeserver is and supports, and where its log stands. */
export async function infoRoute(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/info', async () => ({
    features: ['path-addressed-storage'],
    publicKey: ctx.keypair.z32,
    version: ctx.version,
    events: { head: String(ctx.events.head), floor: String(ctx.events.floor) },
    signup: ctx.config.signupMode,
  }))
}
