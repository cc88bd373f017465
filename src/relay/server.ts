import type { FastifyInstance } from 'fastify'
import type { Config } from '../config/config.js'
import { createContext, type Context } from '../context.js'
import { buildApp, listen, type Server } from '../server.js'
import { readiness } from '../readiness.js'
import { eventsRoute } from '../routes/events.js'
import { healthRoutes } from '../routes/health.js'
import { relayInfoRoute } from '../routes/relay-info.js'
import { subscribeRoutes } from '../routes/subscribe.js'
import { Relay } from './relay.js'

export interface RelayServer extends Omit<Server, 'relays'> {
  relay: Relay
}

/**
 * `hearth relay`: the homeserver's context, log and feed engine over the relay's own store,
 * with the feed routes and a relay's `/info` in place of storage and auth; the log is
 * written by the upstream followers instead of by PUTs.
 */
export async function startRelay(config: Readonly<Config>, log?: FastifyInstance['log']): Promise<RelayServer> {
  const logger = log ?? (await import('../log.js')).createLogger(config.logLevel)
  const base = await createContext(config, logger)
  const relay = new Relay({
    store: base.store,
    events: base.events,
    config: config.relay,
    pkarrRelays: config.testnet ? [`http://127.0.0.1:${config.pkarrRelayPort}`] : config.pkarrRelays,
    log: base.log,
  })
  const ctx: Context = {
    ...base,
    ready: () => readiness({
      storage: () => base.store.ping(),
      busySince: () => relay.ingest.busySince,
      onStorageError: (err) => base.log.warn({ err }, 'readiness: the storage failed a read'),
    }),
  }
  ctx.onStop(() => relay.stop())
  ctx.metrics.watch({ events: ctx.events, writer: relay.ingest, feed: ctx.feed, storage: () => ctx.store.totals() })
  ctx.metrics.watchRelay(relay.upstreams)
  const app = await buildApp(ctx, async (app, ctx) => {
    await relayInfoRoute(app, ctx, relay)
    await healthRoutes(app, ctx)
    await eventsRoute(app, ctx)
    await subscribeRoutes(app, ctx, { snapshots: false })
  })
  const listening = await listen(ctx, app, config, async () => relay.start())
  return { app, ctx, relay, ...listening }
}
