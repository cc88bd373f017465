import { z } from 'zod'
import { TAGS, errorBody, type Answer, type RouteDoc } from './route-doc.js'

/** A route as Fastify registered it (from its onRoute hook). */
export interface RegisteredRoute {
  method: string
  url: string
  doc?: RouteDoc
  plainErrors?: boolean
}

type JsonObject = Record<string, unknown>

const STATUS: Record<number, string> = {
  400: 'Bad input', 401: 'No session, or a wrong password or token', 403: 'Not allowed', 404: 'Not found',
  409: 'A file where a folder is, or the other way round; or the user exists', 413: 'Body too large',
  429: 'Too many requests or streams from this address', 503: 'Not ready', 507: 'Storage quota exceeded',
}

/**
 * The OpenAPI 3.1 document of every registered route, built from the zod schemas the routes
 * validate with (zod → JSON Schema 2020-12, which is OpenAPI 3.1's schema dialect). A route
 * without a doc still appears, marked undocumented, so the document never hides a route.
 */
export function buildDocument(routes: readonly RegisteredRoute[], version: string): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {}
  for (const route of routes) {
    const name = route.doc?.params ? Object.keys(route.doc.params.shape)[0]! : 'path'
    const path = (route.url === '*' ? '/*' : route.url).replace('*', `{${name}}`)
    const method = route.method.toLowerCase()
    ;(paths[path] ??= {})[method] = operation(route, method, path)
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Hearth homeserver',
      version,
      description: 'A Pubky-style homeserver: files under ed25519 keys, one gapless event log, live and resumable SSE feeds.',
    },
    tags: TAGS,
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => (a < b ? -1 : 1))),
    components: { schemas: { Error: schemaOf(errorBody, 'output') } },
  }
}

function operation(route: RegisteredRoute, method: string, path: string): JsonObject {
  const doc = route.doc
  const operationId = `${method}${path.replace(/[{}]/g, '').replace(/[^a-zA-Z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`
  if (doc === undefined) return { operationId, summary: 'Undocumented', responses: { default: { description: 'undocumented' } } }
  const head = method === 'head'
  const parameters = [
    ...parametersOf(doc.params, 'path'),
    ...parametersOf(doc.query, 'query'),
    ...parametersOf(doc.headers, 'header'),
  ]
  const responses: Record<string, JsonObject> = {}
  for (const [status, answer] of Object.entries(doc.responses)) responses[status] = responseOf(answer, head)
  for (const status of doc.errors ?? []) {
    const body = route.plainErrors ? { 'text/plain': { schema: { type: 'string' } } } : { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } }
    responses[String(status)] = head ? { description: STATUS[status] ?? 'Error' } : { description: STATUS[status] ?? 'Error', content: body }
  }
  const op: JsonObject = { operationId, summary: doc.summary, tags: [doc.tag], parameters, responses }
  if (doc.description !== undefined) op.description = doc.description
  if (doc.body !== undefined) {
    op.requestBody = { description: doc.body.description, required: doc.body.required ?? true, content: { [doc.body.type]: {} } }
  }
  return op
}

function parametersOf(schema: z.ZodObject | undefined, where: 'path' | 'query' | 'header'): JsonObject[] {
  if (schema === undefined) return []
  return Object.entries(schema.shape).map(([name, field]) => {
    const { description, ...rest } = schemaOf(field as z.ZodType, 'input')
    const required = where === 'path' || !(field as z.ZodType).safeParse(undefined).success
    const param: JsonObject = { name, in: where, required, schema: rest }
    if (description !== undefined) param.description = description
    return param
  })
}

function responseOf(answer: Answer, head: boolean): JsonObject {
  const out: JsonObject = { description: answer.description }
  if (answer.headers) out.headers = Object.fromEntries(Object.entries(answer.headers).map(([k, d]) => [k, { description: d, schema: { type: 'string' } }]))
  if (answer.content && !head) {
    out.content = Object.fromEntries(Object.entries(answer.content).map(([type, body]) => {
      if ('text' in body) return [type, { schema: { type: 'string', description: body.text } }]
      if ('bytes' in body) return [type, { schema: { description: body.bytes } }]
      return [type, { schema: schemaOf(body as z.ZodType, 'output') }]
    }))
  }
  return out
}

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonObject
  return rest
}
