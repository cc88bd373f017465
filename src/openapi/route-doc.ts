import { z } from 'zod'
import { ERRORS } from '../errors.js'

/**
 * What a route says about itself for the OpenAPI document, next to its handler: the same zod
 * schemas the handler validates its query, path and headers with, and its answers. Error
 * answers take the route's error shape (JSON, or plain text where `plainErrors` is set).
 */
export interface RouteDoc {
  summary: string
  description?: string
  tag: Tag
  query?: z.ZodObject
  /** the path's wildcard (`*`), by the name the document gives it */
  params?: z.ZodObject
  headers?: z.ZodObject
  body?: { type: string; description: string; required?: boolean }
  responses: Record<number, Answer>
  /** statuses answered with the route's error shape */
  errors?: number[]
}

export type Tag = 'storage' | 'auth' | 'feeds' | 'consumers' | 'server'

export const TAGS: { name: Tag; description: string }[] = [
  { name: 'storage', description: "Files under a user's key (upstream-compatible; errors are plain text)" },
  { name: 'auth', description: 'Sign-up and sessions with AuthTokens (upstream-compatible; errors are plain text)' },
  { name: 'feeds', description: 'The event log: the upstream text and SSE feeds, and /subscribe' },
  { name: 'consumers', description: 'Durable consumers: subscriptions whose progress the server keeps, with acks and redelivery (SPEC §12)' },
  { name: 'server', description: 'What the homeserver is, and whether it is well' },
]

export interface Answer {
  description: string
  /** media type → body: a zod schema, or a description of text or bytes */
  content?: Record<string, z.ZodType | { text: string } | { bytes: string }>
  headers?: Record<string, string>
}

declare module 'fastify' {
  interface FastifyContextConfig {
    doc?: RouteDoc
  }
}

/** The contract's JSON error body, §7. */
export const errorBody = z
  .object({
    error: z.enum(Object.keys(ERRORS) as [keyof typeof ERRORS, ...(keyof typeof ERRORS)[]]),
    message: z.string().describe('one human line'),
  })
  .catchall(z.unknown())
  .describe('An error: a code from the registry, a message, and for some codes details (FutureCursor: head)')

/** One user's public key in z-base-32 (52 characters). */
export const publicKey = z.string().regex(/^[ybndrfg8ejkmcpqxot1uwisza345h769]{52}$/).describe('a public key, 52 characters of z-base-32')

/** Where storage and session routes read their user from, besides the path. */
export const userHeaders = z.object({
  'pubky-host': publicKey.optional().describe('the user addressed (else a Host that is a bare key, else ?pubky-host=)'),
  cookie: z.string().optional().describe("the session: a cookie named after the user's key"),
})
export const userQuery = z.object({ 'pubky-host': publicKey.optional().describe('the user addressed, when neither header names one') })

export const json = (schema: z.ZodType, description: string): Answer => ({ description, content: { 'application/json': schema } })
export const text = (description: string, body = description): Answer => ({ description, content: { 'text/plain': { text: body } } })
export const sse = (description: string): Answer => ({ description, content: { 'text/event-stream': { text: description } } })
