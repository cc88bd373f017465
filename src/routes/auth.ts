import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { verifyAuthToken } from '../auth/token.js'
import { encodeSessionInfo } from '../auth/session-info.js'
import { sessionCookie, sessionFor } from '../auth/request.js'
import { decodePublicKey } from '../auth/keys.js'
import type { Session } from '../auth/sessions.js'
import { smallBody } from './body.js'
import { requestUser } from './user.js'
import { noteUser } from './observe.js'
import { userHeaders, userQuery, type Answer, type RouteDoc } from '../openapi/route-doc.js'

/** An AuthToken is 115 bytes plus its capabilities; this leaves room for long lists. */
const MAX_TOKEN_BYTES = 16 * 1024
const signupQuery = z.object({ signup_token: z.string().max(64).optional().describe('in SIGNUP_MODE=token: a token from /admin/generate_signup_token') })

const token = { type: 'application/octet-stream', description: 'an AuthToken (postcard bytes), signed by the user' }
const sessionInfo: Answer = {
  description: 'the SessionInfo (postcard bytes), and the session cookie',
  content: { 'application/octet-stream': { bytes: 'SessionInfo: public key, creation time, capabilities' } },
  headers: { 'set-cookie': "`<user key>=<secret>; HttpOnly; Path=/` (plus `Secure; SameSite=None` off localhost)" },
}
const docs: Record<string, RouteDoc> = {
  signup: { summary: 'Sign up, and start a session', tag: 'auth', query: signupQuery, body: token, responses: { 200: sessionInfo }, errors: [400, 401, 409, 413, 429] },
  signin: { summary: 'Start a session', tag: 'auth', body: token, responses: { 200: sessionInfo }, errors: [400, 404, 413, 429] },
  session: { summary: "The session of the request's user", tag: 'auth', query: userQuery, headers: userHeaders, responses: { 200: sessionInfo }, errors: [400, 404] },
  signout: { summary: 'Sign out', description: "Also ends, within a second, the streams this session opened for /priv/ events.", tag: 'auth', query: userQuery, headers: userHeaders, responses: { 204: { description: 'signed out; the cookie is cleared' } }, errors: [400, 401] },
}

/** `/signup` and `/session`, as upstream: AuthToken in, cookie and SessionInfo out. */
export async function authRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  const config = { plainErrors: true }
  const rateLimit = { max: ctx.config.signupRatePerMinute, timeWindow: 60_000 }

  app.post('/signup', { config: { ...config, rateLimit, doc: docs.signup } }, async (req, reply) => {
    const { signup_token } = signupQuery.parse(req.query)
    const token = await acceptToken(ctx, req)
    if (ctx.config.signupMode === 'token' && signup_token === undefined) fail('Unauthorized', 'A signup token is required')
    await ctx.users.create(token.user, ctx.config.signupMode === 'token' ? signup_token : undefined)
    return startSession(ctx, req, reply, token.user, token.capabilities)
  })

  app.post('/session', { config: { ...config, rateLimit, doc: docs.signin } }, async (req, reply) => {
    const token = await acceptToken(ctx, req)
    if (!(await ctx.users.exists(token.user))) fail('NotFound', 'User not found')
    return startSession(ctx, req, reply, token.user, token.capabilities)
  })

  app.get('/session', { config: { ...config, doc: docs.session } }, async (req, reply) => {
    const user = requestUser(req)
    const session = await sessionFor(ctx, req, user)
    if (session === undefined || session.user !== user) fail('NotFound', 'No session')
    return sendInfo(reply, session)
  })

  app.delete('/session', { config: { ...config, doc: docs.signout } }, async (req, reply) => {
    const user = requestUser(req)
    const found = await sessionCookie(ctx, req, user)
    if (found === undefined || found.session.user !== user) fail('NoSession', 'No session')
    await ctx.sessions.delete(found.secret)
    reply.header('set-cookie', `${user}=; ${cookieAttributes(req)}; Max-Age=0`)
    return reply.code(204).send()
  })
}

async function acceptToken(ctx: Context, req: FastifyRequest) {
  const token = verifyAuthToken(await smallBody(req, MAX_TOKEN_BYTES))
  noteUser(req, token.user)
  await ctx.replay.claim(token)
  return token
}

async function startSession(ctx: Context, req: FastifyRequest, reply: FastifyReply, user: string, capabilities: Session['capabilities']) {
  const { secret, session } = await ctx.sessions.create(user, capabilities)
  reply.header('set-cookie', `${user}=${secret}; ${cookieAttributes(req)}`)
  return sendInfo(reply, session)
}

function sendInfo(reply: FastifyReply, session: Session) {
  const info = encodeSessionInfo({ publicKey: decodePublicKey(session.user)!, createdAt: session.createdAt, capabilities: session.capabilities })
  return reply.type('application/octet-stream').send(Buffer.from(info))
}

/** `Secure; SameSite=None` only off localhost and bare IPs, where browsers would refuse it. */
export function cookieAttributes(req: FastifyRequest): string {
  const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '')
  const local = host === 'localhost' || host.endsWith('.localhost') || /^[\d.]+$/.test(host) || host.includes(':') || host === ''
  return local ? 'HttpOnly; Path=/' : 'HttpOnly; Path=/; Secure; SameSite=None'
}
