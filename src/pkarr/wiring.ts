import type { Config } from '../config/config.js'
import type { Context } from '../context.js'
import { listenFailed } from '../listen-failed.js'
import { createPkarrRelay } from './pkarr-relay.js'
import { startPublisher } from './publisher.js'

export interface PkarrSetup {
  /** where clients should look the homeserver up, if anywhere */
  relays: string[]
}

/**
 * In testnet, a local relay on PKARR_RELAY_PORT; then the homeserver's own packet goes to
 * that relay (testnet) or to PKARR_RELAYS. Publishing never stops the server: failures are
 * retried in the background and logged.
 */
export async function startPkarr(ctx: Context, config: Readonly<Config>, httpPort: number): Promise<PkarrSetup> {
  let relays = config.pkarrRelays
  if (config.testnet) {
    // the homeserver's own record and its users' stay, however many others are published
    const relay = createPkarrRelay({
      maxEntries: 10_000,
      pinned: async (key) => key === ctx.keypair.z32 || (await ctx.store.user(key)) !== undefined,
    })
    await relay.listen({ port: config.pkarrRelayPort, host: config.host }).catch(listenFailed(config.host, config.pkarrRelayPort, 'PKARR_RELAY_PORT'))
    ctx.onStop(() => relay.close())
    const addr = relay.server.address()
    const port = typeof addr === 'object' && addr ? addr.port : config.pkarrRelayPort
    relays = [`http://127.0.0.1:${port}`]
  }
  if (relays.length === 0) return { relays }
  if (!config.testnet && config.publicHost === undefined) {
    ctx.log.warn('PKARR_RELAYS is set but PUBLIC_HOST is not: publishing localhost, which only local clients can reach')
  }
  const publisher = startPublisher({
    secretKey: ctx.keypair.secretKey,
    port: httpPort,
    host: config.testnet ? 'localhost' : (config.publicHost ?? 'localhost'),
    relays,
    log: ctx.log,
    onPublish: (ok) => ctx.metrics.published(ok),
  })
  ctx.onStop(() => publisher.stop())
  // Start-up waits briefly for the first publish, so a testnet client can resolve at once.
  await Promise.race([publisher.publishedOnce, new Promise((r) => setTimeout(r, 2000).unref())])
  return { relays }
}
