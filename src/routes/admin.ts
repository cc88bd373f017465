import type { FastifyInstance } from 'fastify'
import { timingSafeEqual, createHash } from 'node:crypto'
import type { Context } from '../context.js'
import { z } from 'zod'
import { fail } from '../errors.js'
import { text, type RouteDoc } from '../openapi/route-doc.js'

const headers = z.object({ 'x-admin-password': z.string().optional().describe('ADMIN_PASSWORD') })
const doc: RouteDoc = {
  summary: 'A new signup token (only when ADMIN_PASSWORD is set)',
  tag: 'auth',
  headers,
  responses: { 200: text('a signup token', 'XXXX-XXXX-XXXX') },
  errors: [401],
}

/** Admin routes exist only when ADMIN_PASSWORD is set; otherwise they are plain 404s. */
export async function adminRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  const password = ctx.config.adminPassword
  if (password === undefined) return
  app.get('/admin/generate_signup_token', { config: { plainErrors: true, doc } }, async (req, reply) => {
    const given = headers.parse(req.headers)['x-admin-password']
    if (given === undefined || !samePassword(given, password)) fail('Unauthorized', 'Wrong admin password')
    return reply.type('text/plain; charset=utf-8').send(await ctx.signupTokens.generate())
  })
}

/** Compares digests, so neither the length nor the content leaks through timing. */
function samePassword(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(a), digest(b))
}
