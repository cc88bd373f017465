import { homeserverUrls } from './resolve.js'
import type { UpstreamSpec } from './upstream-spec.js'

/** Why an upstream may not speak for the key its `/info` names. */
export interface Refusal {
  fault: 'key-changed' | 'unproven'
  message: string
}

/**
 * Whether the upstream at `url` may speak for `named`, the key its `/info` gives. A homeserver's
 * `/info` is unsigned, so a name there proves nothing: anyone can serve another's key. What
 * proves it is the operator's pin, or the key's own pkarr record (signed by the key) naming
 * this very URL — the way an upstream given as a key is found in the first place.
 *
 * `undefined`: proven. Otherwise the refusal, in the relay's own words.
 */
export async function refusal(spec: UpstreamSpec, url: string, named: string, relays: readonly string[], signal: AbortSignal): Promise<Refusal | undefined> {
  if (spec.kind !== 'url') {
    if (named === spec.key) return undefined
    return { fault: 'key-changed', message: `${url}/info names ${named}, but this upstream is ${spec.key}` }
  }
  const claim = `${url}/info claims ${named}, unproven`
  if (relays.length === 0) return { fault: 'unproven', message: `${claim}: no pkarr relays to check its record (PKARR_RELAYS); pin it as <key>@<url>` }
  let urls: string[]
  try {
    urls = await homeserverUrls(named, relays, signal)
  } catch (err) {
    if (signal.aborted) throw err
    return { fault: 'unproven', message: `${claim}: its pkarr record could not be read` }
  }
  if (urls.some((u) => URL.canParse(u) && new URL(u).origin === spec.url)) return undefined
  return { fault: 'unproven', message: `${claim}: its pkarr record names ${urls[0]}` }
}
