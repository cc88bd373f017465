import { apexEndpoints, parsePayload, type ResolvedEndpoint } from '../pkarr/packet.js'
import { relayUrl } from '../pkarr/publisher.js'
import { decodePublicKey } from '../shared/keys.js'

/** How long one pkarr relay may take to answer a lookup. */
const LOOKUP_MS = 5000

/**
 * Finds where the homeserver with key `z32` serves, from its signed pkarr packet: the first
 * relay (of `relays`) that holds a packet with a valid signature and an HTTPS record wins.
 * A `localhost` target means plain HTTP on the record's HTTP port, as the official client
 * reads it; any other target is `https://<target>[:port]`.
 */
export async function resolveHomeserver(z32: string, relays: readonly string[], signal: AbortSignal): Promise<string> {
  return (await homeserverUrls(z32, relays, signal))[0]!
}

/** Every URL the key's signed packet names, by priority (at least one, or an error says why). */
export async function homeserverUrls(z32: string, relays: readonly string[], signal: AbortSignal): Promise<string[]> {
  const key = decodePublicKey(z32)
  if (key === undefined) throw new Error(`${z32} is not a public key`)
  const problems: string[] = []
  for (const relay of relays) {
    try {
      const res = await fetch(relayUrl(relay, z32), { signal: AbortSignal.any([signal, AbortSignal.timeout(LOOKUP_MS)]), redirect: 'manual' })
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      const endpoints = apexEndpoints(key, parsePayload(key, new Uint8Array(await res.arrayBuffer())))
      if (endpoints.length === 0) throw new Error('the packet names no HTTPS endpoint')
      const urls = endpoints.map(endpointUrl).filter((u) => u !== undefined)
      if (urls.length === 0) throw new Error(`the packet names no host name (${JSON.stringify(endpoints[0]!.target.slice(0, 80))})`)
      return urls
    } catch (err) {
      if (signal.aborted) throw err
      problems.push(`${relay}: ${(err as Error).message}`)
    }
  }
  throw new Error(`cannot resolve ${z32} through pkarr (${problems.join('; ') || 'no relays configured: PKARR_RELAYS or --testnet'})`)
}

/** A DNS host name: labels of letters, digits and inner hyphens, at most 253 characters. */
const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i

/**
 * The URL an HTTPS record names, if any. Its target is read as a host name and nothing else: a target
 * such as `127.0.0.1:17100/internal/admin?x=` is refused, never pasted into a URL.
 */
function endpointUrl(e: ResolvedEndpoint): string | undefined {
  const target = e.target.replace(/\.$/, '')
  if (!HOST_NAME.test(target)) return undefined
  if (target === 'localhost') return `http://localhost:${e.httpPort ?? e.port ?? 80}`
  return `https://${target}${e.port !== undefined && e.port !== 443 ? `:${e.port}` : ''}`
}
