import { follow, type Follower } from 'hearth-homeserver-client/follow'
import type { ResetInfo } from 'hearth-homeserver-client'
import { idOf, seqOfId } from 'hearth-homeserver-client/id'
import type { OriginEvent } from './ingest.js'
import { checkOriginEvent } from './origin-event.js'
import { checkedFetch, UpstreamError } from './upstream-fetch.js'
import type { UpstreamState } from './retry-loop.js'

/** One connection's worth of following one homeserver's `/subscribe`, for the relay's log. */
export interface StreamPump {
  url: string
  /** the homeserver's key: its `/info` must name it at every (re)connect */
  homeserver: string
  filters: readonly string[]
  /** the origin seq to read after */
  from: number
  idleMs: number
  backoff?: { baseMs: number; maxMs: number }
  signal: AbortSignal
  opened(follower: Follower): void
  state(s: Exclude<UpstreamState, 'failed'>): void
  /** the follower lost its connection and tries again by itself */
  retry(error: Error): void
  reset(info: ResetInfo): Promise<void>
  /** an event a homeserver could have written: the promise of its commit, or undefined when it is not stored */
  take(event: OriginEvent): Promise<unknown> | undefined
  /** a position the stream scanned past: the promise of its commit, or undefined when none is needed */
  scanned(at: number): Promise<unknown> | undefined
}

/** Events one stream may have waiting for their commit before it stops reading. */
const MAX_IN_FLIGHT = 4096
/** How often positions scanned past without a match are committed. */
const SCANNED_EVERY_MS = 1000
/** Upstream frames longer than this are refused: an event is at most a few KiB. */
const MAX_FRAME = 64 * 1024

/**
 * Follows one homeserver stream with the project's own follower until something breaks or
 * `signal` aborts: each event is checked (nothing a homeserver could not have written reaches
 * the log), handed to `take`, and acknowledged once committed, in order, never more than
 * MAX_IN_FLIGHT waiting at once; positions scanned past are committed every second, so a
 * restart does not scan them again. The cursor store of the follower is the relay's log itself
 * (cursors are committed with the events), so its own `save` does nothing.
 *
 * Resolves when aborted; otherwise throws why it stopped (a failed commit ends it too), after
 * what was waiting for its commit has landed or failed.
 */
export async function pumpStream(p: StreamPump): Promise<void> {
  const stop = new AbortController()
  const abort = () => stop.abort()
  p.signal.addEventListener('abort', abort, { once: true })
  let failure: unknown
  const fail = (err: unknown) => {
    failure ??= err
    stop.abort()
  }
  const follower = follow({
    url: p.url,
    filters: p.filters,
    cursorStore: { load: async () => idOf(p.from), save: async () => {} },
    ack: 'explicit',
    maxUnacked: MAX_IN_FLIGHT * 2,
    signal: stop.signal,
    idleTimeoutMs: p.idleMs,
    maxFrameBytes: MAX_FRAME,
    backoff: p.backoff,
    // every (re)connect reads /info first: a different homeserver behind the URL ends the attempt
    fetch: checkedFetch(p.homeserver, p.idleMs, fail),
    onState: (s) => s !== 'closed' && p.state(s),
    onRetry: ({ error }) => p.retry(error),
    onReset: (info) => p.reset(info),
  })
  p.opened(follower)
  const scanned = setInterval(() => {
    const at = follower.cursor === undefined ? 0 : Number(seqOfId(follower.cursor) ?? 0)
    p.scanned(at)?.catch(fail)
  }, SCANNED_EVERY_MS)
  let inFlight: Promise<void> = Promise.resolve()
  let waiting = 0
  try {
    if (p.signal.aborted) stop.abort()
    for await (const ev of follower) {
      const event = checkOriginEvent(ev, p.homeserver)
      if (typeof event === 'string') throw new UpstreamError('invalid-event', `${p.url} sent ${event}`)
      const taken = p.take(event)
      if (taken === undefined) {
        ev.ack()
        continue
      }
      waiting++
      inFlight = taken.then(() => ev.ack(), fail).finally(() => waiting--)
      if (waiting >= MAX_IN_FLIGHT) await inFlight
    }
  } catch (err) {
    fail(err)
  } finally {
    clearInterval(scanned)
    p.signal.removeEventListener('abort', abort)
    await follower.close()
    // this attempt's events still waiting for their commit land (or fail) before the next
    // attempt reads the stored cursor: in order, and never more than MAX_IN_FLIGHT at once
    await inFlight.catch(() => {})
  }
  if (!p.signal.aborted && failure !== undefined) throw failure
}
