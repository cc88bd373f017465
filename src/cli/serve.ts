import { access, constants, mkdir, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { buildConfig, type Config } from '../config/config.js'
import { ConfigError, readEnv, readFlags } from '../config/env.js'
import { startServer } from '../server.js'

export const serveHelp = `hearth serve [--port N] [--host ADDR] [--data DIR] [--signup open|token] [--testnet] [--metrics-port N]

Runs the homeserver. Every flag has an environment twin (PORT, HOST, DATA_DIR, SIGNUP_MODE,
TESTNET, METRICS_PORT); see the README for the full list of settings. Logs are JSON lines on
stdout (LOG_LEVEL, default info: one line per request).`

/** Reads and checks the configuration; a bad setting ends the process with one line and status 2. */
export async function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Promise<Readonly<Config>> {
  try {
    const { raw: flags, rest } = readFlags(argv)
    if (rest.length > 0) throw new ConfigError(rest[0]!, 'unknown argument')
    const config = buildConfig({ ...readEnv(env), ...flags })
    await mkdir(config.dataDir, { recursive: true }).catch(() => {})
    // access() alone would pass a writable regular file, which then fails start-up later.
    const isDir = await stat(config.dataDir).then((s) => s.isDirectory(), () => false)
    if (!isDir) throw new ConfigError('DATA_DIR', `${config.dataDir} is not a folder and cannot be made one`)
    await access(config.dataDir, constants.W_OK).catch(() => {
      throw new ConfigError('DATA_DIR', `${config.dataDir} cannot be written`)
    })
    return config
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`hearth: ${err.message}\n`)
    process.exit(2)
  }
}

export async function serve(argv: string[]): Promise<void> {
  const config = await loadConfig(argv, process.env)
  const server = await startServer(config)
  server.ctx.log.info({ url: server.url, publicKey: server.ctx.keypair.z32, data: config.dataDir, metrics: server.metricsUrl }, 'hearth is serving')
  // The JSON lines are for log shippers; a person at a terminal also gets this.
  if (process.stderr.isTTY) process.stderr.write(banner(server.url, server.ctx.keypair.z32, resolve(config.dataDir), server.metricsUrl))
  if (config.testnet) process.stderr.write(testnetBanner(server.ctx.keypair.z32, server.relays[0]!))
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    server.ctx.log.info({ signal }, 'stopping')
    // A hard deadline: whatever hangs, the process is gone within 5 s.
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

function banner(url: string, key: string, data: string, metrics: string | undefined): string {
  const lines = [
    `hearth is serving on ${url}`,
    `  homeserver key  ${key}`,
    `  data folder     ${data}`,
    `  viewer          ${url}/`,
    `  API description ${url}/openapi.json`,
  ]
  if (metrics !== undefined) lines.push(`  metrics         ${metrics}`)
  return `\n${lines.join('\n')}\n  Ctrl-C stops it.\n\n`
}

/** What a developer pastes into an app to use this homeserver with the official client. */
function testnetBanner(key: string, relay: string): string {
  return `
Testnet homeserver ready.
  homeserver public key: ${key}
  pkarr relay:           ${relay}

With @synonymdev/pubky:
  import { Pubky, PublicKey, Keypair } from '@synonymdev/pubky'
  const pubky = Pubky.testnet('127.0.0.1')   // or: new Client({ pkarr: { relays: ['${relay}'] } })
  const signer = pubky.signer(Keypair.random())
  const session = await signer.signup(PublicKey.from('${key}'), null)
  await session.storage.putText('/pub/hello.txt', 'hello')

`
}
