import type { FastifyRequest } from 'fastify'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { covers, type Action } from './capabilities.js'
import type { Session } from './sessions.js'

export type { Session }

/**
 * The value of the cookie called `name`. Browsers and the official client's cookie jar send
 * every cookie of the host at once, one per user, so the cookie is chosen by the user's key.
 */
export function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/** The session behind the request's cookie for `user`, if any (it may belong to someone else). */
export async function sessionFor(ctx: Context, req: FastifyRequest, user: string): Promise<Session | undefined> {
  const secret = cookie(req.headers.cookie, user)
  return secret === undefined ? undefined : ctx.sessions.get(secret)
}

/** 401 without a session for `user`, 403 when it is someone else's or lacks the capability. */
export async function requireAccess(ctx: Context, req: FastifyRequest, user: string, path: string, action: Action): Promise<Session> {
  const session = await sessionFor(ctx, req, user)
  if (session === undefined) fail('NoSession', 'No session')
  if (session.user !== user) fail('Forbidden', 'Session does not belong to this user')
  if (!covers(session.capabilities, path, action)) fail('Forbidden', `Session has no ${action === 'w' ? 'write' : 'read'} capability for ${path}`)
  return session
}
