import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Metrics } from '../metrics/metrics.js'

const users = new WeakMap<FastifyRequest, string>()
const streams = new WeakSet<FastifyRequest>()

/** Names the user a request acts for (a public key), for its log line. */
export function noteUser(req: FastifyRequest, user: string): void {
  users.set(req, user)
}

/** Marks a request answered with an SSE stream: it is logged when the stream ends. */
export function markStream(req: FastifyRequest): void {
  streams.add(req)
}

/**
 * One log line (info) and one duration sample per answered request, by route pattern and
 * status. The line names the route, never the URL (its path or query may hold a /priv/ name
 * or a signup token), and carries no header, so no cookie or token can reach the log.
 */
export function observeRequests(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched'
    const stream = streams.has(req)
    const ms = Math.round(reply.elapsedTime * 10) / 10
    // a stream's time is its lifetime, which would swamp the request latencies
    if (!stream) metrics.observeRequest(req.method, route, reply.statusCode, reply.elapsedTime / 1000)
    const line = { method: req.method, route, status: reply.statusCode, ms, user: users.get(req), stream: stream || undefined }
    req.log.info(line, stream ? 'stream ended' : 'request')
  })
}
