import type { FastifyRequest } from 'fastify'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { covers, type Action } from './capabilities.js'
import type { Session } from './sessions.js'

export type { Session }

/**
 * The values of every cookie called `name`, in the order sent. Browsers and the official
 * client's cookie jar send every cookie of the host at once, one per user, so the cookie is
 * chosen by the user's key; a browser may hold several under one name (an old one for another
 * path or domain, say), and all of them arrive.
 */
export function cookies(header: string | undefined, name: string): string[] {
  if (header === undefined) return []
  const out: string[] = []
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) out.push(part.slice(eq + 1).trim())
  }
  return out
}

/**
 * The session behind the request's cookies for `user`, and its secret: the first that is
 * `user`'s own, else the first live one (someone else's, which the caller refuses as such).
 * Each distinct value is tried once; the header's size bounds how many there are.
 */
export async function sessionCookie(ctx: Context, req: FastifyRequest, user: string): Promise<{ secret: string; session: Session } | undefined> {
  let other: { secret: string; session: Session } | undefined
  for (const secret of new Set(cookies(req.headers.cookie, user))) {
    const session = await ctx.sessions.get(secret)
    if (session === undefined) continue
    if (session.user === user) return { secret, session }
    other ??= { secret, session }
  }
  return other
}

/** The session behind the request's cookies for `user`, if any (it may belong to someone else). */
export async function sessionFor(ctx: Context, req: FastifyRequest, user: string): Promise<Session | undefined> {
  return (await sessionCookie(ctx, req, user))?.session
}

/** 401 without a session for `user`, 403 when it is someone else's or lacks the capability. */
export async function requireAccess(ctx: Context, req: FastifyRequest, user: string, path: string, action: Action): Promise<Session> {
  const session = await sessionFor(ctx, req, user)
  if (session === undefined) fail('NoSession', 'No session')
  if (session.user !== user) fail('Forbidden', 'Session does not belong to this user')
  if (!covers(session.capabilities, path, action)) fail('Forbidden', `Session has no ${action === 'w' ? 'write' : 'read'} capability for ${path}`)
  return session
}
