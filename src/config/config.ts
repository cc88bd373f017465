import { z } from 'zod'
import { ConfigError, type RawConfig } from './env.js'
import { MAX_FILTERS, parseFilters } from '../subscriptions/filter.js'
import { Z32_KEY } from '../shared/keys.js'
import { parseUpstream, UPSTREAM_SYNTAX, upstreamText } from '../relay/upstream-spec.js'

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 }
const DURATIONS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }

const size = z.string().transform((s, ctx) => {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(s.trim())
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a size like 1048576, 100MiB or 1GiB' })
    return z.NEVER
  }
  return Math.floor(Number(m[1]) * unit)
})

const int = (min: number, max: number) =>
  z.string().regex(/^\d+$/, 'expected a whole number').transform(Number).pipe(z.number().int().min(min).max(max))

const duration = z.string().transform((s, ctx) => {
  const d = /^(\d+)([smhd])$/.exec(s)
  if (d && Number(d[1]) > 0) return Number(d[1]) * DURATIONS[d[2]!]!
  ctx.addIssue({ code: 'custom', message: 'expected a duration like 90m, 12h or 30d' })
  return z.NEVER
})

/** A rate like `10/min` (burst: twice the count) or `10/min:20` (burst 20). */
const rate = z.string().transform((s, ctx) => {
  const m = /^(\d+)\/(s|min|h)(?::(\d+))?$/.exec(s.trim())
  const per = m === null ? undefined : { s: 1e3, min: 60e3, h: 3600e3 }[m[2] as 's' | 'min' | 'h']
  if (m !== null && per !== undefined && Number(m[1]) > 0 && (m[3] === undefined || Number(m[3]) > 0)) {
    return { count: Number(m[1]), perMs: per, burst: m[3] === undefined ? 2 * Number(m[1]) : Number(m[3]) }
  }
  ctx.addIssue({ code: 'custom', message: 'expected a rate like 10/min, 1/s or 100/h, with an optional burst: 10/min:20' })
  return z.NEVER
})

const databaseUrl = z.string().refine((s) => /^postgres(ql)?:\/\/./.test(s), 'expected a postgres:// URL')

const retention = z.string().transform((s, ctx) => {
  const count = /^\d+$/.exec(s)
  if (count && Number(s) > 0) return { count: Number(s) }
  const d = /^(\d+)([smhd])$/.exec(s)
  // like a count of 0, a zero duration would keep nothing: refused, not obeyed
  if (d && Number(d[1]) > 0) return { ms: Number(d[1]) * DURATIONS[d[2]!]! }
  ctx.addIssue({ code: 'custom', message: 'expected a positive count like 1000000 or a duration like 30d' })
  return z.NEVER
})

/** A relay upstream, in its one spelling (src/relay/upstream-spec.ts says what each form trusts). */
const upstream = z.string().transform((s, ctx) => {
  const spec = parseUpstream(s)
  if (spec !== undefined) return upstreamText(spec)
  ctx.addIssue({ code: 'custom', message: UPSTREAM_SYNTAX })
  return z.NEVER
})

/** An http(s) URL, as a pkarr relay is named. */
const httpUrl = z.string().refine((s) => /^https?:\/\/[^\s/?#]+/i.test(s) && URL.canParse(s), 'expected http(s) URLs, comma-separated')

const list = (item: z.ZodType<string, string>) =>
  z.string().transform((s) => s.split(',').map((v) => v.trim()).filter(Boolean)).pipe(z.array(item))

const relayFilter = z.string().refine((s) => {
  try {
    parseFilters([s])
    return true
  } catch {
    return false
  }
}, 'expected /subscribe filters like *, <key>/* or */pub/app/*')

const schema = z.object({
  PORT: int(0, 65535).default(6286),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATA_DIR: z.string().min(1).default('./data'),
  SIGNUP_MODE: z.enum(['open', 'token']).default('open'),
  ADMIN_PASSWORD: z.string().min(1).optional(),
  HOMESERVER_SECRET_KEY: z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex characters').optional(),
  TESTNET: z.enum(['1', 'true', '0', 'false']).default('0').transform((v) => v === '1' || v === 'true'),
  PKARR_RELAY_PORT: int(0, 65535).default(15411),
  PKARR_RELAYS: list(httpUrl).default([]),
  PUBLIC_HOST: z.string().min(1).optional(),
  MAX_BODY: size.default(100 * 1024 ** 2),
  USER_QUOTA: size.default(1024 ** 3),
  EVENT_RETENTION: retention.optional(),
  MAX_STREAMS_PER_IP: int(1, 1_000_000).default(64),
  KEEPALIVE_MS: int(100, 3_600_000).default(15000),
  SIGNUP_RATE_LIMIT: int(1, 1_000_000).default(100),
  DATABASE_URL: databaseUrl.optional(),
  DATABASE_POLL_MS: int(100, 3_600_000).optional(),
  SESSION_TTL: duration.optional(),
  UPLOADS_PER_USER: int(1, 10_000).default(8),
  UPLOADS_TOTAL: int(1, 100_000).default(64),
  BODY_IDLE_MS: int(100, 3_600_000).default(30_000),
  SNAPSHOT_VIEWS: int(0, 1000).default(4),
  METRICS_PORT: int(0, 65535).optional(),
  CONSUMER_CREATE_RATE: rate.default({ count: 10, perMs: 60_000, burst: 20 }),
  MAX_CONSUMERS_PER_USER: int(1, 1_000_000).default(100),
  RELAY_UPSTREAMS: list(upstream).default([]),
  RELAY_FILTERS: list(relayFilter).default(['*']),
  RELAY_IDLE_MS: int(100, 3_600_000).default(45_000),
  RELAY_RETRY_MAX_MS: int(10, 3_600_000).default(30_000),
  RELAY_FOLLOW: list(z.string().regex(Z32_KEY, 'expected user keys (52 characters of z-base-32), comma-separated')).default([]),
  RELAY_LINGER_MS: int(0, 86_400_000).default(60_000),
  RELAY_ALLOW_PRIVATE_ADDRESSES: z.enum(['1', 'true', '0', 'false']).default('0').transform((v) => v === '1' || v === 'true'),
  RELAY_RECORD_MIN_MS: int(10, 86_400_000).default(60_000),
  RELAY_RECORD_MAX_MS: int(10, 86_400_000).default(3_600_000),
  RELAY_RESOLVES_PER_SECOND: int(1, 100_000).default(50),
  RELAY_MAX_USERS: int(1, 10_000_000).default(10_000),
  RELAY_FILTERS_PER_SUBSCRIBER: int(1, MAX_FILTERS).default(MAX_FILTERS),
  RELAY_STREAM_FILTERS: int(1, MAX_FILTERS).default(MAX_FILTERS),
  RELAY_STREAMS_PER_HOMESERVER: int(1, 10_000).default(16),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})

export interface Config {
  port: number
  host: string
  dataDir: string
  signupMode: 'open' | 'token'
  adminPassword?: string
  secretKey?: string
  testnet: boolean
  pkarrRelayPort: number
  pkarrRelays: string[]
  publicHost?: string
  maxBody: number
  userQuota: number
  retention?: { count: number } | { ms: number }
  maxStreamsPerIp: number
  keepaliveMs: number
  logLevel: string
  /** the Prometheus listener's port, on `host`; none when unset */
  metricsPort?: number
  /** sign-ups and sign-ins per client address per minute */
  signupRatePerMinute: number
  /** files up to this size live inline in the database; larger ones become blob files */
  inlineMax: number
  /** PostgreSQL instead of the embedded LevelDB */
  databaseUrl?: string
  /** with PostgreSQL: how often the log's head is read in case a commit notification was lost */
  databasePollMs?: number
  /** sessions older than this (ms) are signed out; unset keeps them until sign-out */
  sessionTtlMs?: number
  /** request bodies read at once per user, and in all */
  uploadsPerUser: number
  uploadsTotal: number
  /** a body that sends nothing for this long is cut off with 408 */
  bodyIdleMs: number
  /** read views snapshot streams hold across pages at once (0: each page is read in a view of its own) */
  snapshotViews: number
  /** durable consumers a user may create: so many per period, with a burst; and how many they may have */
  consumerCreateRate: Rate
  maxConsumersPerUser: number
  /** `hearth relay`: what it follows and how */
  relay: RelayConfig
}

export interface Rate {
  count: number
  perMs: number
  burst: number
}

export interface RelayConfig {
  /** homeserver keys resolved through pkarr, URLs pinned to a key (`<key>@<url>`), or URLs */
  upstreams: string[]
  /** `/subscribe` filters sent to every upstream */
  filters: string[]
  /** an upstream stream silent this long (or a request unanswered) is dropped and reopened */
  idleMs: number
  /** the longest wait before trying a dropped upstream again (waits start at 1 s, or this if less) */
  retryMaxMs: number
  /** users followed for good (`--follow`): standing interests in everything public of theirs */
  follow: string[]
  /** a followed user's filter that no subscriber holds any more is dropped upstream after this long */
  lingerMs: number
  /** users' records may point at loopback, private and link-local addresses (tests, private networks) */
  allowPrivateAddresses: boolean
  /** a user's record is read again after its TTL, at least this long and at most `recordMaxMs` after the last read */
  recordMinMs: number
  recordMaxMs: number
  /** user records read per second at most */
  resolvesPerSecond: number
  /** distinct users followed at once at most */
  maxUsers: number
  /** filters naming users one subscriber may hold */
  maxFiltersPerSubscriber: number
  /** filters one upstream stream carries, and upstream streams to one homeserver */
  streamFilters: number
  streamsPerHomeserver: number
}

/** Step two: validate, apply defaults, freeze. Throws ConfigError naming the first bad setting. */
export function buildConfig(raw: RawConfig, overrides: Partial<Config> = {}): Readonly<Config> {
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new ConfigError(String(issue.path[0] ?? 'config'), issue.message)
  }
  const e = parsed.data
  if (e.RELAY_RECORD_MIN_MS > e.RELAY_RECORD_MAX_MS) throw new ConfigError('RELAY_RECORD_MIN_MS', 'must not exceed RELAY_RECORD_MAX_MS')
  if (e.METRICS_PORT !== undefined && e.METRICS_PORT !== 0 && e.METRICS_PORT === e.PORT) {
    throw new ConfigError('METRICS_PORT', 'must differ from PORT')
  }
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    dataDir: e.DATA_DIR,
    signupMode: e.SIGNUP_MODE,
    adminPassword: e.ADMIN_PASSWORD,
    secretKey: e.HOMESERVER_SECRET_KEY?.toLowerCase(),
    testnet: e.TESTNET,
    pkarrRelayPort: e.PKARR_RELAY_PORT,
    pkarrRelays: e.PKARR_RELAYS,
    publicHost: e.PUBLIC_HOST,
    maxBody: e.MAX_BODY,
    userQuota: e.USER_QUOTA,
    retention: e.EVENT_RETENTION,
    maxStreamsPerIp: e.MAX_STREAMS_PER_IP,
    keepaliveMs: e.KEEPALIVE_MS,
    logLevel: e.LOG_LEVEL,
    metricsPort: e.METRICS_PORT,
    signupRatePerMinute: e.SIGNUP_RATE_LIMIT,
    inlineMax: 64 * 1024,
    databaseUrl: e.DATABASE_URL,
    databasePollMs: e.DATABASE_POLL_MS,
    sessionTtlMs: e.SESSION_TTL,
    uploadsPerUser: e.UPLOADS_PER_USER,
    uploadsTotal: e.UPLOADS_TOTAL,
    bodyIdleMs: e.BODY_IDLE_MS,
    snapshotViews: e.SNAPSHOT_VIEWS,
    consumerCreateRate: e.CONSUMER_CREATE_RATE,
    maxConsumersPerUser: e.MAX_CONSUMERS_PER_USER,
    relay: Object.freeze({
      upstreams: [...new Set(e.RELAY_UPSTREAMS)],
      filters: e.RELAY_FILTERS,
      idleMs: e.RELAY_IDLE_MS,
      retryMaxMs: e.RELAY_RETRY_MAX_MS,
      follow: [...new Set(e.RELAY_FOLLOW)],
      lingerMs: e.RELAY_LINGER_MS,
      allowPrivateAddresses: e.RELAY_ALLOW_PRIVATE_ADDRESSES,
      recordMinMs: e.RELAY_RECORD_MIN_MS,
      recordMaxMs: e.RELAY_RECORD_MAX_MS,
      resolvesPerSecond: e.RELAY_RESOLVES_PER_SECOND,
      maxUsers: e.RELAY_MAX_USERS,
      maxFiltersPerSubscriber: e.RELAY_FILTERS_PER_SUBSCRIBER,
      streamFilters: e.RELAY_STREAM_FILTERS,
      streamsPerHomeserver: e.RELAY_STREAMS_PER_HOMESERVER,
    }),
    ...overrides,
  })
}
