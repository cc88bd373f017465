import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { json, publicKey, type RouteDoc } from '../openapi/route-doc.js'

export const infoBody = z.object({
  features: z.array(z.string()).describe('`path-addressed-storage`: /storage/<key>/… works'),
  publicKey: publicKey.describe("the homeserver's own key"),
  version: z.string(),
  events: z.object({
    head: z.string().describe('the newest seq, in decimal'),
    floor: z.string().describe('the oldest seq kept, in decimal'),
  }),
  signup: z.enum(['open', 'token']),
})

const doc: RouteDoc = {
  summary: 'What this homeserver is and supports, and where its log stands',
  tag: 'server',
  responses: { 200: json(infoBody, 'the homeserver') },
}

/** `GET /info`: what this homeserver is and supports, and where its log stands. */
export async function infoRoute(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/info', { config: { doc } }, async (): Promise<z.infer<typeof infoBody>> => ({
    features: ['path-addressed-storage'],
    publicKey: ctx.keypair.z32,
    version: ctx.version,
    events: { head: String(ctx.events.head), floor: String(ctx.events.floor) },
    signup: ctx.config.signupMode,
  }))
}
