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
import type { Filter } from '../subscriptions/filter.js'
import type { SseStream } from '../feed/sse.js'

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
  ctx.metrics.watchRelay(relay.upstreams, relay.following)
  const app = await buildApp(ctx, async (app, ctx) => {
    await relayInfoRoute(app, ctx, relay)
    await healthRoutes(app, ctx)
    await eventsRoute(app, ctx)
    await subscribeRoutes(app, ctx, { snapshots: false, hold: (filters) => holdInterest(relay, filters) })
  })
  const listening = await listen(ctx, app, config, async () => relay.start())
  return { app, ctx, relay, ...listening }
}

/**
 * A subscriber's filters naming users become the relay's interests while its stream is open;
 * a user the relay cannot resolve is reported on the stream as `event: unresolved`.
 */
function holdInterest(relay: Relay, filters: readonly Filter[]): { attach(stream: SseStream): void; release(): void } {
  let stream: SseStream | undefined
  const early: string[] = []
  const release = relay.following.hold(filters, {
    unresolved(user, reason) {
      const frame = `event: unresolved\ndata: ${JSON.stringify({ user, reason })}\n\n`
      if (stream === undefined) early.push(frame)
      // a backed-up stream misses the report, which only says why no event of that user comes yet
      else if (!stream.closed && !stream.backedUp) stream.write(frame)
    },
  })
  return {
    attach(s) {
      stream = s
      for (const frame of early) s.write(frame)
      s.onClose(release)
    },
    release,
  }
}
