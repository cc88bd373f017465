import type { FastifyInstance } from 'fastify'
import { timingSafeEqual, createHash } from 'node:crypto'
import type { Context } from '../context.js'
import { fail } from '../errors.js'

/** Admin routes exist only when ADMIN_PASSWORD is set; otherwise they are plain 404s. */
export async function adminRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  const password = ctx.config.adminPassword
  if (password === undefined) return
  app.get('/admin/generate_signup_token', { config: { plainErrors: true } }, async (req, reply) => {
    const given = req.headers['x-admin-password']
    if (typeof given !== 'string' || !samePassword(given, password)) fail('Unauthorized', 'Wrong admin password')
    return reply.type('text/plain; charset=utf-8').send(await ctx.signupTokens.generate())
  })
}

/** Compares digests, so neither the length nor the content leaks through timing. */
function samePassword(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(a), digest(b))
}
