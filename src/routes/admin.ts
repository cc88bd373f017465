import type { FastifyInstance } from 'fastify'
import type { Context } from '../context.js'
import { text, type RouteDoc } from '../openapi/route-doc.js'
import { adminHeaders, requireAdminPassword } from './admin-password.js'
import { adminEventsStreamRoute } from './admin-events-stream.js'

const doc: RouteDoc = {
  summary: 'A new signup token (only when ADMIN_PASSWORD is set)',
  tag: 'auth',
  headers: adminHeaders,
  responses: { 200: text('a signup token', 'XXXX-XXXX-XXXX') },
  errors: [401],
}

/** Admin routes exist only when ADMIN_PASSWORD is set; otherwise they are plain 404s. */
export async function adminRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  const password = ctx.config.adminPassword
  if (password === undefined) return
  app.get('/admin/generate_signup_token', { config: { plainErrors: true, doc } }, async (req, reply) => {
    requireAdminPassword(req, password)
    return reply.type('text/plain; charset=utf-8').send(await ctx.signupTokens.generate())
  })
  await adminEventsStreamRoute(app, ctx, password)
}
