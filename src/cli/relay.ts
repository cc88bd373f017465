import { startRelay } from '../relay/server.js'
import { loadConfig, startOrExit, stopOnSignals } from './serve.js'

export const relayHelp = `hearth relay [--upstream KEY|KEY@URL|URL …] [--filter F …] [--follow USER …] [--port N] [--host ADDR] [--data DIR] [--database URL] [--testnet] [--metrics-port N]

Follows the public feeds of many homeservers and serves them as one durable, gapless log with
/subscribe, /events/ and /info (each upstream's state, cursor and lag). An upstream is a
homeserver key, resolved through pkarr (PKARR_RELAYS, or the local testnet relay with
--testnet); or KEY@URL, a URL pinned to the key it must serve; or a URL alone, followed only if
the key its /info names has a pkarr record naming that URL. --filter narrows what is followed
(default *).

It also follows people: a /subscribe filter naming a user (<key>/pub/app/*) makes the relay
find that user's homeserver from their pkarr record and follow what is asked of them there,
history first; --follow USER follows a user for good. Environment twins: RELAY_UPSTREAMS,
RELAY_FILTERS and RELAY_FOLLOW (comma-separated), RELAY_IDLE_MS, RELAY_LINGER_MS, and PORT
(default 6287), HOST, DATA_DIR, DATABASE_URL, METRICS_PORT, EVENT_RETENTION as for serve.`

export async function relay(argv: string[]): Promise<void> {
  const config = await loadConfig(argv, process.env, { PORT: '6287' })
  if (config.relay.upstreams.length === 0 && config.pkarrRelays.length === 0 && !config.testnet) {
    process.stderr.write('hearth: invalid setting RELAY_UPSTREAMS: name at least one upstream (--upstream KEY, KEY@URL or URL), or pkarr relays to find the users subscribers ask for (PKARR_RELAYS or --testnet)\n')
    process.exit(2)
  }
  const server = await startOrExit(config, startRelay)
  server.ctx.log.info({ url: server.url, upstreams: config.relay.upstreams, storage: server.ctx.store.location, metrics: server.metricsUrl }, 'hearth relay is serving')
  if (process.stderr.isTTY) {
    const following = [...config.relay.upstreams, ...config.relay.follow.map((u) => `${u} (a user)`), 'the users subscribers ask for']
    process.stderr.write(`\nhearth relay is serving on ${server.url}\n  following  ${following.join('\n             ')}\n` +
      `  storage    ${server.ctx.store.engine}: ${server.ctx.store.location}\n  follow it  hearth tail --url ${server.url}\n  Ctrl-C stops it.\n\n`)
  }
  stopOnSignals(server)
}
