import type { FastifyInstance } from 'fastify'
import type { Context } from '../context.js'
import { adminRoutes } from './admin.js'
import { authRoutes } from './auth.js'
import { eventsRoute } from './events.js'
import { eventsStreamRoute } from './events-stream.js'
import { infoRoute } from './info.js'
import { healthRoutes } from './health.js'
import { storageRoutes } from './storage.js'
import { subscribeRoutes } from './subscribe.js'
import { consumerRoutes } from './consumers.js'
import { viewerRoutes } from './viewer.js'

export async function registerRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  await infoRoute(app, ctx)
  await healthRoutes(app, ctx)
  await authRoutes(app, ctx)
  await adminRoutes(app, ctx)
  await eventsRoute(app, ctx)
  await eventsStreamRoute(app, ctx)
  await subscribeRoutes(app, ctx)
  await consumerRoutes(app, ctx)
  await storageRoutes(app, ctx)
  await viewerRoutes(app)
}
