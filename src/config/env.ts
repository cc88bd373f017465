/**
 * Step one of configuration: gather the raw settings, flags over environment, into one
 * flat object of strings. Nothing is interpreted here; src/config/config.ts validates.
 */
export interface RawConfig {
  PORT?: string
  HOST?: string
  DATA_DIR?: string
  SIGNUP_MODE?: string
  ADMIN_PASSWORD?: string
  HOMESERVER_SECRET_KEY?: string
  TESTNET?: string
  PKARR_RELAY_PORT?: string
  PKARR_RELAYS?: string
  PUBLIC_HOST?: string
  MAX_BODY?: string
  USER_QUOTA?: string
  EVENT_RETENTION?: string
  MAX_STREAMS_PER_IP?: string
  KEEPALIVE_MS?: string
  LOG_LEVEL?: string
  SIGNUP_RATE_LIMIT?: string
  DATABASE_URL?: string
  DATABASE_POLL_MS?: string
  SESSION_TTL?: string
  UPLOADS_PER_USER?: string
  UPLOADS_TOTAL?: string
  BODY_IDLE_MS?: string
  SNAPSHOT_VIEWS?: string
  CONSUMER_CREATE_RATE?: string
  MAX_CONSUMERS_PER_USER?: string
  METRICS_PORT?: string
  RELAY_UPSTREAMS?: string
  RELAY_FILTERS?: string
  RELAY_IDLE_MS?: string
  RELAY_RETRY_MAX_MS?: string
  RELAY_FOLLOW?: string
  RELAY_LINGER_MS?: string
  RELAY_ALLOW_PRIVATE_ADDRESSES?: string
  RELAY_RECORD_MIN_MS?: string
  RELAY_RECORD_MAX_MS?: string
  RELAY_RESOLVES_PER_SECOND?: string
  RELAY_MAX_USERS?: string
  RELAY_FILTERS_PER_SUBSCRIBER?: string
  RELAY_STREAM_FILTERS?: string
  RELAY_STREAMS_PER_HOMESERVER?: string
}

export const FLAGS: Record<string, keyof RawConfig> = {
  '--port': 'PORT',
  '--host': 'HOST',
  '--data': 'DATA_DIR',
  '--signup': 'SIGNUP_MODE',
  '--database': 'DATABASE_URL',
  '--metrics-port': 'METRICS_PORT',
}

/** Flags that may be given more than once; their values are joined with commas, as in the environment. */
export const LIST_FLAGS: Record<string, keyof RawConfig> = {
  '--upstream': 'RELAY_UPSTREAMS',
  '--filter': 'RELAY_FILTERS',
  '--follow': 'RELAY_FOLLOW',
}

export function readEnv(env: NodeJS.ProcessEnv): RawConfig {
  const keys: (keyof RawConfig)[] = [
    'PORT', 'HOST', 'DATA_DIR', 'SIGNUP_MODE', 'ADMIN_PASSWORD', 'HOMESERVER_SECRET_KEY', 'TESTNET',
    'PKARR_RELAY_PORT', 'PKARR_RELAYS', 'PUBLIC_HOST', 'MAX_BODY', 'USER_QUOTA', 'EVENT_RETENTION',
    'MAX_STREAMS_PER_IP', 'KEEPALIVE_MS', 'LOG_LEVEL', 'SIGNUP_RATE_LIMIT', 'DATABASE_URL', 'DATABASE_POLL_MS', 'SESSION_TTL', 'UPLOADS_PER_USER', 'UPLOADS_TOTAL', 'BODY_IDLE_MS', 'SNAPSHOT_VIEWS',
    'CONSUMER_CREATE_RATE', 'MAX_CONSUMERS_PER_USER',
    'METRICS_PORT', 'RELAY_UPSTREAMS', 'RELAY_FILTERS', 'RELAY_IDLE_MS', 'RELAY_RETRY_MAX_MS',
    'RELAY_FOLLOW', 'RELAY_LINGER_MS', 'RELAY_ALLOW_PRIVATE_ADDRESSES', 'RELAY_RECORD_MIN_MS', 'RELAY_RECORD_MAX_MS', 'RELAY_RESOLVES_PER_SECOND', 'RELAY_MAX_USERS', 'RELAY_FILTERS_PER_SUBSCRIBER', 'RELAY_STREAM_FILTERS', 'RELAY_STREAMS_PER_HOMESERVER',
  ]
  const raw: RawConfig = {}
  for (const k of keys) if (env[k] !== undefined && env[k] !== '') raw[k] = env[k]
  return raw
}

/** `--port 1 --host=x --testnet`: returns the settings and any arguments left over. */
export function readFlags(argv: string[]): { raw: RawConfig; rest: string[] } {
  const raw: RawConfig = {}
  const rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    if (flag === '--testnet') {
      raw.TESTNET = '1'
    } else if (LIST_FLAGS[flag] !== undefined) {
      const value = inline ?? argv[++i]
      if (value === undefined) throw new ConfigError(flag, 'needs a value')
      const setting = LIST_FLAGS[flag]!
      raw[setting] = raw[setting] === undefined ? value : `${raw[setting]},${value}`
    } else if (FLAGS[flag] !== undefined) {
      const value = inline ?? argv[++i]
      if (value === undefined) throw new ConfigError(flag, 'needs a value')
      raw[FLAGS[flag]!] = value
    } else {
      rest.push(arg)
    }
  }
  return { raw, rest }
}

export class ConfigError extends Error {
  constructor(readonly setting: string, problem: string) {
    super(`invalid setting ${setting}: ${problem}`)
  }
}
