import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from './config/config.js'
import { keypairFromSecret, type Keypair } from './auth/keys.js'
import type { Store } from './kv/store.js'
import { openStore } from './kv/open.js'
import { FileStore } from './kv/files.js'
import { Writer } from './events/writer.js'
import { EventLog } from './events/event-log.js'
import { FeedEngine } from './feed/engine.js'
import { SessionStore } from './auth/sessions.js'
import { SignupTokens } from './auth/signup-tokens.js'
import { UserStore } from './auth/users.js'
import { ReplayGuard } from './auth/replay.js'
import { Slots } from './slots.js'
import { Retention } from './events/retention.js'
import { Metrics } from './metrics/metrics.js'
import { readiness } from './readiness.js'
import { ConsumerHub } from './consumers/hub.js'
import { CreateRate } from './consumers/create-rate.js'
import { ConsumerService } from './consumers/service.js'

/** With several processes on one store: how often consumer deliveries and `acked` waits look at what other processes changed. */
const CONSUMER_POLL_MS = 500

/** How often expired sessions are swept from storage (with SESSION_TTL). */
const SESSION_SWEEP_MS = 60_000

/**
 * The server's services, built once from the config (createContext) and passed to whoever
 * needs them. Only the entry points in src/cli/ read the environment, and hand it to the
 * config. Modules keep no service state of their own; what they do keep is safe to share
 * between contexts in one process: caches keyed by an event or a request (feed/frames.ts,
 * routes/observe.ts) and a pool of idle hashers (shared/content-hash.ts). Started beside it
 * once the server listens, and stopped through `onStop`: the pkarr publisher, with a local
 * pkarr relay in testnet (pkarr/wiring.ts), and in `hearth relay` the upstream followers
 * (relay/server.ts).
 */
export interface Context {
  config: Readonly<Config>
  log: FastifyBaseLogger
  store: Store
  files: FileStore
  events: EventLog
  writer: Writer
  feed: FeedEngine
  /** durable consumers' deliveries in this process (SPEC §12) */
  consumers: ConsumerHub
  /** what the consumer routes do */
  consumerService: ConsumerService
  /** EVENT_RETENTION's pruner, when a policy is set */
  retention?: Retention
  /** open SSE streams per client address */
  limiter: Slots
  /** request bodies being streamed to blobs, per user and in total */
  uploads: Slots
  sessions: SessionStore
  users: UserStore
  signupTokens: SignupTokens
  replay: ReplayGuard
  keypair: Keypair
  version: string
  metrics: Metrics
  /** undefined when the storage answers and the writer is not stuck, else the reason */
  ready(): Promise<string | undefined>
  /** registers work to run when the server stops accepting (end streams, stop timers) */
  onStop(hook: () => Promise<void> | void): void
  /** runs the stop hooks; called before the HTTP server closes */
  stopping(): Promise<void>
  close(): Promise<void>
}

export async function createContext(config: Readonly<Config>, log: FastifyBaseLogger): Promise<Context> {
  const store = await openStore(config, log)
  try {
    return await build(config, log, store)
  } catch (err) {
    await store.close().catch(() => {})
    throw err
  }
}

async function build(config: Readonly<Config>, log: FastifyBaseLogger, store: Store): Promise<Context> {
  const secret = config.secretKey ? Uint8Array.from(Buffer.from(config.secretKey, 'hex')) : await store.homeserverSecret(() => Uint8Array.from(randomBytes(32)))
  const keypair = keypairFromSecret(secret)
  const events = await EventLog.open(store)
  const writer = new Writer(store, events, config.userQuota)
  const metrics = new Metrics()
  const feed = new FeedEngine(events, { keepaliveMs: config.keepaliveMs, snapshotViews: config.snapshotViews }, metrics.feed)
  const sessions = new SessionStore(store, { ttlMs: config.sessionTtlMs })
  const consumers = new ConsumerHub({
    store, events, feed, observer: metrics.consumers, keepaliveMs: config.keepaliveMs, log,
    pollMs: store.supports.manyProcesses ? CONSUMER_POLL_MS : undefined,
  })
  // Signing out ends the streams that saw /priv/ events through that session (SPEC §4), in
  // every process: the store tells each of them. A process whose notifications lapsed (a lost
  // database connection) checks its streams' sessions again when it reconnects.
  const unwatchSignOut = sessions.onSignOut((secret) => {
    feed.endSession(secret)
    consumers.endSession(secret)
  })
  const unwatchReconnect = store.watch((head) => {
    if (head !== undefined) return
    for (const secret of feed.privateSessions()) {
      void sessions.get(secret).then((s) => s === undefined && feed.endSession(secret), () => {})
    }
  })
  const hooks: (() => Promise<void> | void)[] = [() => feed.stop(), () => consumers.stop(), () => events.close(), unwatchSignOut, unwatchReconnect]
  if (config.sessionTtlMs !== undefined) {
    // expired sessions leave storage even if nobody presents them again
    const sweeper = setInterval(() => void sessions.sweep().catch((err) => log.warn({ err }, 'sweeping expired sessions failed')), SESSION_SWEEP_MS)
    sweeper.unref()
    hooks.push(() => clearInterval(sweeper))
  }
  let retention: Retention | undefined
  if (config.retention) {
    retention = new Retention(events, config.retention, (err) => log.error({ err }, 'pruning the event log failed'))
    retention.start()
    hooks.push(() => retention!.stop())
  }
  return {
    config, log, store, events, writer, feed, retention, keypair, sessions, consumers,
    consumerService: new ConsumerService({
      store, events, hub: consumers, rate: new CreateRate(config.consumerCreateRate), maxPerUser: config.maxConsumersPerUser, observer: metrics.consumers,
    }),
    files: new FileStore(store),
    limiter: new Slots({ perKey: config.maxStreamsPerIp, what: 'open streams per client' }),
    uploads: new Slots({ perKey: config.uploadsPerUser, total: config.uploadsTotal, what: 'large uploads in progress per user' }),
    users: new UserStore(store),
    signupTokens: new SignupTokens(store),
    replay: new ReplayGuard(store),
    version: await packageVersion(),
    metrics,
    ready: () => readiness({
      storage: () => store.ping(),
      busySince: () => writer.busySince,
      onStorageError: (err) => log.warn({ err }, 'readiness: the storage failed a read'),
    }),
    onStop: (hook) => void hooks.push(hook),
    async stopping() {
      await Promise.allSettled(hooks.map((h) => h()))
    },
    async close() {
      await writer.idle()
      await store.close()
    },
  }
}

async function packageVersion(): Promise<string> {
  const file = new URL('../../package.json', import.meta.url)
  return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version
}
