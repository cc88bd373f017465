import { RetryableError, smallBody } from 'hearth-homeserver-client/stream'
import { Z32_KEY } from '../shared/keys.js'

/** Why an upstream was dropped, as counted: a fixed set, so it can be a metric label. */
export type UpstreamFault =
  | 'unreachable' // the network, a 5xx, a 429, no answer, a stream gone silent
  | 'protocol' // malformed or oversized frames, ids that do not increase, a refusal
  | 'invalid-event' // an event that no homeserver could have written (bad key or path, private)
  | 'key-changed' // `/info` names another homeserver than the one this upstream was
  | 'unproven' // a URL whose `/info` names a key that neither a pin nor the key's pkarr record vouches for
  | 'duplicate' // the same homeserver as another upstream of this relay
  | 'storage' // the relay could not commit

export const UPSTREAM_FAULTS: readonly UpstreamFault[] = ['unreachable', 'protocol', 'invalid-event', 'key-changed', 'unproven', 'duplicate', 'storage']

export class UpstreamError extends Error {
  constructor(readonly fault: UpstreamFault, message: string) {
    super(message)
  }
}

/** `fetch` for a follower of the homeserver `key`: no redirects, and an `/info` naming another key ends the attempt. */
export function checkedFetch(key: string, idleMs: number, fail: (err: unknown) => void): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, { ...init, redirect: 'manual' })
    refuseRedirect(res, String(input))
    if (!String(input).endsWith('/info') || !res.ok) return res
    const text = await smallBody(res, idleMs, init?.signal ?? new AbortController().signal)
    const named = infoKey(text)
    if (named !== key) {
      const err = named === undefined
        ? new UpstreamError('protocol', `${String(input)} does not name a homeserver key`)
        : new UpstreamError('key-changed', `${String(input)} now names ${named}, not ${key}`)
      fail(err)
      throw err
    }
    return new Response(text, { status: res.status, headers: res.headers })
  }
}

export function infoKey(text: string): string | undefined {
  let key: unknown
  try {
    key = (JSON.parse(text) as { publicKey?: unknown } | null)?.publicKey
  } catch {
    return undefined
  }
  return typeof key === 'string' && Z32_KEY.test(key) ? key : undefined
}

/** Errors from the follower: what it retries is the network; what it gives up on is the protocol. */
export function faultOf(err: unknown): UpstreamFault {
  if (err instanceof UpstreamError) return err.fault
  const cause = (err as { cause?: unknown }).cause
  if (cause instanceof UpstreamError) return cause.fault
  return err instanceof RetryableError ? 'unreachable' : 'protocol'
}

/**
 * An upstream never sends the relay elsewhere: a redirect could point it at a service behind
 * the relay's own network, whose answers would then reach the relay's public `/info`.
 */
export function refuseRedirect(res: Response, url: string): void {
  if (res.status < 300 || res.status >= 400) return
  void res.body?.cancel()
  throw new UpstreamError('protocol', `${url} answered a redirect (${res.status}); a relay follows none`)
}
