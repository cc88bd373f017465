import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

/**
 * Addresses a relay does not reach on a stranger's say-so. A user's pkarr record is anyone's to
 * write: without this guard, a record naming `localhost` or an address on the relay's own
 * network would have the relay fetch from services behind it and report what they answer.
 */
const PRIVATE = new BlockList()
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 3],
] as const) PRIVATE.addSubnet(net, bits, 'ipv4')
for (const [net, bits] of [['::', 127], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) PRIVATE.addSubnet(net, bits, 'ipv6')

export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return PRIVATE.check(mapped[1]!, 'ipv4')
  const family = isIP(address)
  return family === 0 || PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/**
 * Why the relay refuses to reach `url`, or undefined: a scheme other than http(s), or a host
 * that is, or resolves to, a loopback, private or link-local address. (Checked before each
 * connection; the connection itself resolves the name again, so a name that changes its
 * answer in between is not caught here.)
 */
export async function refusedAddress(url: string): Promise<string | undefined> {
  const parsed = URL.canParse(url) ? new URL(url) : undefined
  if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) return `${url} is not an http(s) URL`
  const host = parsed.hostname.replace(/^\[|\]$/g, '')
  let addresses: string[]
  try {
    addresses = isIP(host) !== 0 ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)
  } catch {
    return `${parsed.hostname} does not resolve`
  }
  const bad = addresses.find(isPrivateAddress)
  return bad === undefined ? undefined : `${parsed.hostname} is a loopback, private or link-local address (${bad}); RELAY_ALLOW_PRIVATE_ADDRESSES=1 allows it`
}
