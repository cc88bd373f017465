import type { FastifyRequest } from 'fastify'
import { createHash, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { fail } from '../errors.js'

/** The header every admin route is opened with, for the document and the check. */
export const adminHeaders = z.object({ 'x-admin-password': z.string().optional().describe('ADMIN_PASSWORD') })

/** Refuses (401) a request whose `X-Admin-Password` is missing or not `password`. */
export function requireAdminPassword(req: FastifyRequest, password: string): void {
  const given = adminHeaders.parse(req.headers)['x-admin-password']
  if (given === undefined || !samePassword(given, password)) fail('Unauthorized', 'Wrong admin password')
}

/** Compares digests, so neither the length nor the content leaks through timing. */
function samePassword(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(a), digest(b))
}
