import { Z32_KEY } from '../shared/keys.js'

/**
 * An upstream as the operator gives it (`--upstream`, `RELAY_UPSTREAMS`), and what vouches for
 * the homeserver key it speaks for:
 *   - `<key>`: a homeserver key. Where it serves comes from its pkarr record, signed by the key.
 *   - `<key>@<url>`: a URL the operator pins to a key. Its `/info` must name that key.
 *   - `<url>`: a URL alone. The key its `/info` names is taken only if that key's own pkarr
 *     record names this URL; a claim nothing proves is refused.
 * A URL is kept as its origin (`HTTP://Host:80/` → `http://host`), so one server has one spelling.
 */
export type UpstreamSpec =
  | { kind: 'key'; key: string }
  | { kind: 'pinned'; key: string; url: string }
  | { kind: 'url'; url: string }

const URL_TEXT = /^https?:\/\/[^/?#@\s]+\/?$/i

export const UPSTREAM_SYNTAX = 'expected a homeserver key (52 characters of z-base-32), <key>@http(s)://host[:port], or http(s)://host[:port]'

export function parseUpstream(text: string): UpstreamSpec | undefined {
  if (Z32_KEY.test(text)) return { kind: 'key', key: text }
  const at = text.indexOf('@')
  if (at === -1) return URL_TEXT.test(text) && URL.canParse(text) ? { kind: 'url', url: new URL(text).origin } : undefined
  const key = text.slice(0, at)
  const url = text.slice(at + 1)
  if (!Z32_KEY.test(key) || !URL_TEXT.test(url) || !URL.canParse(url)) return undefined
  return { kind: 'pinned', key, url: new URL(url).origin }
}

/** The one spelling of an upstream: what `/info` and the metrics call it. */
export function upstreamText(spec: UpstreamSpec): string {
  if (spec.kind === 'key') return spec.key
  return spec.kind === 'pinned' ? `${spec.key}@${spec.url}` : spec.url
}

/**
 * Where the events come from, as the relay keeps its cursor: the URL (pinned or proven by
 * pkarr, the same server either way), or the key for an upstream given as one, wherever it
 * serves. Each source has its own cursor, moved only by what that source sent.
 */
export function sourceOf(spec: UpstreamSpec): string {
  return spec.kind === 'key' ? spec.key : spec.url
}
