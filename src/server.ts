import { listenFailed } from './listen-failed.js'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import type { Config } from './config/config.js'
import { createContext, type Context } from './context.js'
import { answerClientError, installErrorHandler, sendBadUrl } from './routes/errors.js'
import { registerRoutes } from './routes/index.js'
import { startPkarr } from './pkarr/wiring.js'
import { observeRequests } from './routes/observe.js'
import { collectRoutes, openapiRoute } from './routes/openapi.js'
import { EVENT_ID_HEADER, EVENT_SEQ_HEADER } from './routes/storage-doc.js'
import { listenMetrics, type MetricsListener } from './metrics/listener.js'

export interface Server {
  app: FastifyInstance
  ctx: Context
  /** `http://host:port` once listening */
  url: string
  /** pkarr relays the homeserver publishes its record to (the local one in testnet) */
  relays: string[]
  /** `http://host:port/metrics` with METRICS_PORT */
  metricsUrl?: string
  close(): Promise<void>
}

/** Builds the HTTP server around a context: CORS, body handling, error shapes, routes. */
export async function buildApp(
  ctx: Context,
  register: (app: FastifyInstance, ctx: Context) => Promise<void> = registerRoutes,
): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: ctx.log,
    // Open SSE streams must not hold shutdown hostage.
    forceCloseConnections: true,
    // Storage paths are up to 4096 bytes; the router's default would turn long ones into 404s.
    routerOptions: { maxParamLength: 8192 },
    bodyLimit: ctx.config.maxBody,
    // Fastify's two lines per request give way to one (src/routes/observe.ts).
    logController: new LogController({ disableRequestLogging: true }),
    // A URL whose percent-encoding does not decode reaches no route; without this Fastify
    // answers it in its own JSON, even on storage paths, where errors are plain text.
    frameworkErrors: (_err, req, reply) => sendBadUrl(req, reply),
    clientErrorHandler: (err, socket) => answerClientError(ctx.log, err, socket),
  })
  installErrorHandler(app)
  observeRequests(app, ctx.metrics)
  const routes = collectRoutes(app)
  await app.register(cors, {
    origin: true,
    credentials: true,
    methods: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS'],
    exposedHeaders: ['etag', 'last-modified', 'content-length', 'content-type', 'pubky-host', EVENT_ID_HEADER, EVENT_SEQ_HEADER],
  })
  // Only routes that ask for it (sign-up, sign-in) are limited.
  await app.register(rateLimit, { global: false })
  // Every body reaches its route as a stream: storage hashes it on the way in, auth reads a
  // few hundred bytes. Nothing is buffered on a route's behalf.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload))
  await register(app, ctx)
  await openapiRoute(app, ctx, routes)
  return app
}

export async function startServer(config: Readonly<Config>, log?: FastifyInstance['log']): Promise<Server> {
  const logger = log ?? (await import('./log.js')).createLogger(config.logLevel)
  const ctx = await createContext(config, logger)
  ctx.metrics.watch({ events: ctx.events, writer: ctx.writer, feed: ctx.feed, storage: () => ctx.store.totals() })
  ctx.metrics.watchConsumers(ctx.consumers)
  const app = await buildApp(ctx)
  let relays: string[] = []
  const listening = await listen(ctx, app, config, async (port) => {
    relays = (await startPkarr(ctx, config, port)).relays
  })
  return { app, ctx, relays, ...listening }
}

export interface Listening {
  /** `http://host:port` once listening */
  url: string
  /** `http://host:port/metrics` with METRICS_PORT */
  metricsUrl?: string
  /** stops accepting, ends streams, closes the listeners and the storage; once */
  close(): Promise<void>
}

/**
 * Puts `app` on the network, with the metrics listener when METRICS_PORT is set, then runs
 * `started` with the port. A failed start (a busy port, say) leaves no listener or open
 * storage behind.
 */
export async function listen(
  ctx: Context,
  app: FastifyInstance,
  config: Readonly<Config>,
  started: (port: number) => Promise<void> = async () => {},
): Promise<Listening> {
  let metrics: MetricsListener | undefined
  const stop = async () => {
    await ctx.stopping()
    await Promise.all([app.close(), metrics?.close()])
    await ctx.close()
  }
  try {
    await app.listen({ port: config.port, host: config.host }).catch(listenFailed(config.host, config.port, 'PORT'))
    const addr = app.server.address()
    const port = typeof addr === 'object' && addr ? addr.port : config.port
    if (config.metricsPort !== undefined) {
      metrics = await listenMetrics(ctx.metrics, config.host, config.metricsPort, (err) => ctx.log.error({ err }, 'collecting the metrics failed'))
        .catch(listenFailed(config.host, config.metricsPort, 'METRICS_PORT'))
    }
    await started(port)
    const host = config.host.includes(':') ? `[${config.host}]` : config.host
    let closing: Promise<void> | undefined
    return {
      url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
      metricsUrl: metrics?.url,
      close() {
        closing ??= stop()
        return closing
      },
    }
  } catch (err) {
    await stop()
    throw err
  }
}

