import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { buildDocument, type RegisteredRoute } from '../openapi/document.js'
import { json, type RouteDoc } from '../openapi/route-doc.js'

/** Routes that plugins register, which carry no doc of their own. */
const PLUGIN_ROUTES: Record<string, RouteDoc> = {
  'OPTIONS *': {
    summary: 'CORS preflight',
    description: 'Any origin may read, write (with its cookie) and follow the feeds, as upstream.',
    tag: 'server',
    params: z.object({ path: z.string().describe('any path') }),
    responses: { 204: { description: 'the CORS headers', headers: { 'access-control-allow-origin': 'the origin asking' } } },
  },
}

/**
 * Every route Fastify registers from now on, as the OpenAPI document will list it. Call
 * before any route or plugin is registered.
 */
export function collectRoutes(app: FastifyInstance): RegisteredRoute[] {
  const routes: RegisteredRoute[] = []
  app.addHook('onRoute', (opts) => {
    for (const method of [opts.method].flat()) {
      routes.push({ method, url: opts.url, doc: opts.config?.doc ?? PLUGIN_ROUTES[`${method} ${opts.url}`], plainErrors: opts.config?.plainErrors })
    }
  })
  return routes
}

/** `GET /openapi.json`: the document, built once, on first request, when every route is in. */
export async function openapiRoute(app: FastifyInstance, ctx: Context, routes: readonly RegisteredRoute[]): Promise<void> {
  let document: Record<string, unknown> | undefined
  const doc: RouteDoc = {
    summary: 'This document',
    description: 'OpenAPI 3.1, generated from the schemas that validate the requests.',
    tag: 'server',
    responses: { 200: json(z.object({ openapi: z.literal('3.1.0') }).catchall(z.unknown()), 'the OpenAPI document') },
  }
  app.get('/openapi.json', { config: { doc } }, async () => (document ??= buildDocument(routes, ctx.version)))
}
