import type { FastifyReply, FastifyRequest } from 'fastify'
import { z, ZodError } from 'zod'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { sessionCookie, type Session } from '../auth/request.js'
import type { ConsumerRecord } from '../kv/store.js'
import { checkConsumerId } from '../consumers/definition.js'
import { checkReadable } from '../consumers/matcher.js'
import { json, userHeaders, userQuery, type RouteDoc } from '../openapi/route-doc.js'
import { smallBody } from './body.js'
import { requestUser } from './user.js'

/** The largest JSON body a consumer route reads. */
const MAX_BODY = 1024 * 1024

export const consumerParams = z.object({ id: z.string().describe('the consumer id: a ULID (26 characters of Crockford base32)') })

/** What every consumer route documents: the owner named as storage routes name the user, and its session. */
export const ownerDoc = { query: userQuery, headers: userHeaders, params: consumerParams } satisfies Partial<RouteDoc>

export const stateSchema = z.object({
  id: z.string(), filters: z.array(z.string()), from: z.unknown(), ack: z.enum(['explicit', 'automatic']),
  ackWaitMs: z.number(), maxDeliver: z.number(), maxPending: z.number(), shareProgress: z.boolean(),
  ackFloor: z.string().describe('every matching event at or below this id is done'),
  pending: z.number().describe('events out unacked'), redelivered: z.number().describe('of those, out more than once'),
  dead: z.number().describe('dead letters kept'), lag: z.number().describe('events in the log past the ack floor'),
  streams: z.number().describe('streams open on the instance that answers'), createdAt: z.number().describe('ms since the epoch'),
  reset: z.object({ requested: z.string(), floor: z.string() }).nullable().describe('the last time retention overtook the consumer'),
}).describe('a consumer: its definition and where it stands')
export const stateAnswer = (description: string) => json(stateSchema, description)

export interface Owner {
  user: string
  secret: string
  session: Session
}

/** The owner (pubky-host, Host or ?pubky-host=) and their session: 401 without one, 403 when it is someone else's. */
export async function requireOwner(ctx: Context, req: FastifyRequest): Promise<Owner> {
  const user = requestUser(req)
  const found = await sessionCookie(ctx, req, user)
  if (found === undefined) fail('NoSession', 'No session')
  if (found.session.user !== user) fail('Forbidden', 'Session does not belong to this user')
  return { user, ...found }
}

/** The consumer id the path names. */
export function idParam(req: FastifyRequest): string {
  return checkConsumerId(consumerParams.parse(req.params).id, Date.now())
}

/** The consumer the path names, of the owner: 404 when there is none, 403 when the owner's session may not use it (`mayRead`). */
export async function consumerOf(ctx: Context, req: FastifyRequest, owner: Owner): Promise<ConsumerRecord> {
  const record = await ctx.consumerService.get(owner.user, idParam(req))
  checkReadable(record, owner.session)
  return record
}

/** A small JSON body, parsed with `parse`: a bad one is a 400 InvalidBody naming what is wrong. */
export async function jsonBody<T>(req: FastifyRequest, parse: (body: unknown) => T): Promise<T> {
  const bytes = await smallBody(req, MAX_BODY)
  let body: unknown
  try {
    body = bytes.length === 0 ? undefined : JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    fail('InvalidBody', 'The body is not JSON')
  }
  try {
    return parse(body)
  } catch (err) {
    if (!(err instanceof ZodError)) throw err
    const issue = err.issues[0]
    fail('InvalidBody', `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`)
  }
}

/** A 429 that says when to come back. */
export function tooMany(reply: FastifyReply, seconds: number, message: string): never {
  reply.header('retry-after', String(Math.max(1, seconds)))
  fail('TooManyRequests', message)
}
