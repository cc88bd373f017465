import { access, constants, mkdir, rm, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { buildConfig, type Config } from '../config/config.js'
import { ConfigError, FLAGS, LIST_FLAGS, readEnv, readFlags, type RawConfig } from '../config/env.js'
import { startServer } from '../server.js'
import { ListenFailed } from '../listen-failed.js'
import type { Context } from '../context.js'
import { StorageUnavailable } from '../kv/open.js'

export const serveHelp = `hearth serve [--port N] [--host ADDR] [--data DIR] [--database URL] [--signup open|token] [--testnet] [--metrics-port N]

Runs the homeserver. Every flag has an environment twin (PORT, HOST, DATA_DIR, DATABASE_URL,
SIGNUP_MODE, TESTNET, METRICS_PORT); see the README for the full list of settings. Logs are
JSON lines on stdout (LOG_LEVEL, default info: one line per request).`

/** Reads and checks the configuration; a bad setting ends the process with one line and status 2. */
export async function loadConfig(argv: string[], env: NodeJS.ProcessEnv, defaults: RawConfig = {}): Promise<Readonly<Config>> {
  let fromFlags: string[] = []
  try {
    const { raw: flags, rest } = readFlags(argv)
    fromFlags = Object.keys(flags)
    if (rest.length > 0) throw new ConfigError(rest[0]!, 'unknown argument')
    const config = buildConfig({ ...defaults, ...readEnv(env), ...flags })
    // with a database, nothing lives in the data folder: none is made
    if (config.databaseUrl !== undefined) return config
    const existed = await stat(config.dataDir).then(() => true, () => false)
    await mkdir(config.dataDir, { recursive: true }).catch(() => {})
    if (!existed) madeDataDir.add(config)
    // access() alone would pass a writable regular file, which then fails start-up later.
    const isDir = await stat(config.dataDir).then((s) => s.isDirectory(), () => false)
    if (!isDir) throw new ConfigError('DATA_DIR', `${config.dataDir} is not a folder and cannot be made one`)
    await access(config.dataDir, constants.W_OK).catch(() => {
      throw new ConfigError('DATA_DIR', `${config.dataDir} cannot be written`)
    })
    return config
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`hearth: ${asGiven(err, fromFlags).message}\n`)
    process.exit(2)
  }
}

/** Configs whose data folder this start made: a failed start removes it again. */
const madeDataDir = new WeakSet<object>()

/** How each setting a listener fails on is given as a flag. */
const LISTEN_FLAGS: Record<string, string> = { PORT: '--port', HOST: '--host', METRICS_PORT: '--metrics-port' }

/** A bad value is named the way the user gave it: `--port` when it came from the flag. */
function asGiven(err: ConfigError, fromFlags: string[]): ConfigError {
  const flags = { ...FLAGS, ...LIST_FLAGS }
  const flag = Object.keys(flags).find((f) => flags[f] === err.setting)
  if (flag === undefined || !fromFlags.includes(err.setting)) return err
  return new ConfigError(flag, err.message.slice(`invalid setting ${err.setting}: `.length))
}

export async function serve(argv: string[]): Promise<void> {
  const config = await loadConfig(argv, process.env)
  const server = await startOrExit(config, startServer)
  const storage = server.ctx.store.location
  server.ctx.log.info({ url: server.url, publicKey: server.ctx.keypair.z32, storage, metrics: server.metricsUrl }, 'hearth is serving')
  // The JSON lines are for log shippers; a person at a terminal also gets this.
  if (process.stderr.isTTY) process.stderr.write(banner(server.url, server.ctx.keypair.z32, server.ctx.store.engine, storage, server.metricsUrl))
  if (config.testnet) process.stderr.write(testnetBanner(server.ctx.keypair.z32, server.relays[0]!))
  stopOnSignals(server)
}

/** Starts a server; storage that cannot be opened ends the process with one line and status 2. */
export async function startOrExit<S>(config: Readonly<Config>, start: (config: Readonly<Config>) => Promise<S>): Promise<S> {
  try {
    return await start(config)
  } catch (err) {
    // a failed start leaves nothing behind: not the folder it made, nor a key written into it
    if (madeDataDir.has(config)) await rm(config.dataDir, { recursive: true, force: true }).catch(() => {})
    if (err instanceof ListenFailed) {
      const flag = LISTEN_FLAGS[err.setting]
      process.stderr.write(`hearth: ${err.message} (${err.setting}${flag === undefined ? '' : `, ${flag}`})\n`)
      process.exit(2)
    }
    if (err instanceof StorageUnavailable) {
      process.stderr.write(`hearth: ${err.message} (DATABASE_URL, --database)\n`)
      process.exit(2)
    }
    if (!heldByAnother(err)) throw err
    process.stderr.write(`hearth: the data folder ${resolve(config.dataDir)} (DATA_DIR, --data) is held by another process, ` +
      'most likely another hearth serve or relay: stop that one, or give this one another folder\n')
    process.exit(2)
  }
}

/** SIGTERM and SIGINT close the server (streams end, storage flushes) and exit 0, within 5 s whatever hangs. */
export function stopOnSignals(server: { ctx: Context; close(): Promise<void> }): void {
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    server.ctx.log.info({ signal }, 'stopping')
    setTimeout(() => process.exit(1), 4500).unref()
    server.close().then(
      () => process.exit(0),
      (err) => {
        server.ctx.log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

/** LevelDB allows one process per folder; its lock error sits somewhere in the cause chain. */
function heldByAnother(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === 'LEVEL_LOCKED') return true
  }
  return false
}

function banner(url: string, key: string, engine: string, storage: string, metrics: string | undefined): string {
  const lines = [
    `hearth is serving on ${url}`,
    `  homeserver key  ${key}`,
    `  storage         ${engine}: ${storage}`,
    `  viewer          ${url}/`,
    `  API description ${url}/openapi.json`,
  ]
  if (metrics !== undefined) lines.push(`  metrics         ${metrics}`)
  return `\n${lines.join('\n')}\n  Ctrl-C stops it.\n\n`
}

/**
 * What a developer pastes into an app to use this homeserver with the official client: the
 * README's example (a test keeps the two the same), with this homeserver's key and relay.
 */
export function testnetBanner(key: string, relay: string): string {
  return `
Testnet homeserver ready.
  homeserver public key: ${key}
  pkarr relay:           ${relay}

With @synonymdev/pubky@0.6.0 (an ES module, Node 20 or newer):

import { Pubky, Client, Keypair, PublicKey } from '@synonymdev/pubky'

const pubky = Pubky.testnet('127.0.0.1')
// or, for a relay on another port:
// const pubky = Pubky.withClient(new Client({ pkarr: { relays: ['${relay}'] } }))

const homeserver = PublicKey.from('${key}')
const signer = pubky.signer(Keypair.random())
const session = await signer.signup(homeserver, null)   // SIGNUP_MODE=token: pass the token instead of null

await session.storage.putText('/pub/example.com/hello.txt', 'hello')
const user = session.info.publicKey.z32()
console.log(await pubky.publicStorage.getText(\`pubky\${user}/pub/example.com/hello.txt\`))
console.log(await session.storage.list('/pub/example.com/'))

`
}
