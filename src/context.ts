import { mkdir, readFile, writeFile, rename } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from './config/config.js'
import { keypairFromSecret, type Keypair } from './auth/keys.js'
import type { KV } from './kv/backend.js'
import { LevelKV } from './kv/level.js'
import { BlobStore } from './kv/blobs.js'
import { FileStore } from './kv/files.js'
import { Writer } from './kv/writer.js'
import { EventLog } from './events/log.js'
import { FeedEngine } from './feed/engine.js'
import { SessionStore } from './auth/sessions.js'
import { SignupTokens } from './auth/signup-tokens.js'
import { UserStore } from './auth/users.js'
import { ReplayGuard } from './auth/replay.js'
import { StreamLimiter } from './feed/ip-limit.js'
import { Retention } from './events/retention.js'
import { Metrics } from './metrics/metrics.js'
import { readiness } from './readiness.js'

/**
 * Every service, built once from the config and passed to whoever needs it. Nothing else
 * reads the environment or holds global state.
 */
export interface Context {
  config: Readonly<Config>
  log: FastifyBaseLogger
  kv: KV
  blobs: BlobStore
  files: FileStore
  events: EventLog
  writer: Writer
  feed: FeedEngine
  /** EVENT_RETENTION's pruner, when a policy is set */
  retention?: Retention
  limiter: StreamLimiter
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
  await mkdir(config.dataDir, { recursive: true })
  const keypair = keypairFromSecret(await homeserverSecret(config))
  const kv = new LevelKV(join(config.dataDir, 'db'))
  await kv.open()
  const blobs = new BlobStore(join(config.dataDir, 'blobs'))
  await blobs.open()
  const swept = await blobs.sweep(async (id) => (await kv.get('blobs', id)) !== undefined)
  if (swept > 0) log.info({ swept }, 'removed unreferenced blobs')
  const events = new EventLog(kv)
  await events.load()
  const writer = new Writer(kv, events, blobs, config.userQuota)
  writer.start()
  const files = new FileStore(kv, blobs)
  const metrics = new Metrics()
  const feed = new FeedEngine(events, config.keepaliveMs, metrics.feed)
  const limiter = new StreamLimiter(config.maxStreamsPerIp)
  const signupTokens = new SignupTokens(kv)
  const hooks: (() => Promise<void> | void)[] = [() => feed.stop()]
  let retention: Retention | undefined
  if (config.retention) {
    retention = new Retention(events, config.retention, (err) => log.error({ err }, 'pruning the event log failed'))
    retention.start()
    hooks.push(() => retention!.stop())
  }
  return {
    config, log, kv, blobs, files, events, writer, feed, retention, limiter, keypair,
    sessions: new SessionStore(kv),
    users: new UserStore(kv, signupTokens),
    signupTokens,
    replay: new ReplayGuard(),
    version: await packageVersion(),
    metrics,
    ready: () => readiness({
      storage: () => kv.get('meta', 'head'),
      busySince: () => writer.busySince,
      onStorageError: (err) => log.warn({ err }, 'readiness: the storage failed a read'),
    }),
    onStop: (hook) => void hooks.push(hook),
    async stopping() {
      await Promise.allSettled(hooks.map((h) => h()))
    },
    async close() {
      await writer.idle()
      await kv.close()
    },
  }
}

/** The homeserver's own key: from the config, else generated once and kept in the data folder. */
async function homeserverSecret(config: Readonly<Config>): Promise<Uint8Array> {
  if (config.secretKey) return Uint8Array.from(Buffer.from(config.secretKey, 'hex'))
  const file = join(config.dataDir, 'homeserver.key')
  try {
    const hex = (await readFile(file, 'utf8')).trim()
    if (/^[0-9a-f]{64}$/i.test(hex)) return Uint8Array.from(Buffer.from(hex, 'hex'))
    throw new Error(`${file} does not hold 64 hex characters`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const secret = randomBytes(32)
  await writeFile(`${file}.tmp`, secret.toString('hex') + '\n', { mode: 0o600 })
  await rename(`${file}.tmp`, file)
  return Uint8Array.from(secret)
}

async function packageVersion(): Promise<string> {
  const file = new URL('../../package.json', import.meta.url)
  return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version
}
