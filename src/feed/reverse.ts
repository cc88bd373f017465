import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import { EventFrames } from './frames.js'
import { EVENTS_STREAM } from './wire.js'
import type { SseStream } from './sse.js'
import { PAGE } from './pages.js'
import type { FeedObserver } from './observer.js'
import { readsUnder, type CanSee } from './visibility.js'

/** What a newest-first read takes: one user's index or the whole log, and what it keeps. */
export interface Backwards {
  /** the one user whose index may be read instead of the whole log */
  onlyUser?: string
  canSee: CanSee
  accepts: (ev: HearthEvent) => boolean
}

export interface ReverseSpec extends Backwards {
  /** exclusive: only events below it are read (default: everything up to the head) */
  before?: number
  limit?: number
}

/** How many events a look back for the newest matches reads at most (`recentStart`). */
export const RECENT_SCAN = 10_000

/**
 * A newest-first replay (`/events-stream?reverse=true`): reads the log backwards from the
 * head, sends what `canSee` and `accepts` take, waits whenever the socket holds HIGH_WATER bytes, and
 * ends at the floor or after `limit` events. Never live.
 */
export async function replayReverse(events: EventLog, stream: SseStream, spec: ReverseSpec, observer: FeedObserver): Promise<void> {
  let sent = 0
  let batch = ''
  let bytes = 0
  let batched = 0
  const flush = () => {
    if (batch !== '') stream.write(batch)
    if (batched > 0) observer.delivered(EVENTS_STREAM.protocol, 'replay', batched)
    batch = ''
    bytes = 0
    batched = 0
  }
  for await (const page of pagesBackwards(events, spec, spec.before, () => stream.closed)) {
    for (const ev of page) {
      if (!spec.canSee(ev) || !spec.accepts(ev)) continue
      // frames join one write while the socket and the batch hold less than HIGH_WATER
      if (stream.buffered + bytes >= stream.highWater) {
        flush()
        await stream.drained()
      }
      if (stream.closed) return
      const frame = EVENTS_STREAM.text(new EventFrames(ev))
      batch += frame
      bytes += Buffer.byteLength(frame)
      batched++
      if (spec.limit !== undefined && ++sent >= spec.limit) break
    }
    flush()
    if (spec.limit !== undefined && sent >= spec.limit) break
  }
  stream.end()
}

/**
 * Where a stream that opens with the `n` newest events it sees and accepts starts (an
 * exclusive cursor, for `/subscribe?recent=n`): just before the n-th newest of them; just
 * before the oldest found, when fewer lie above the floor within RECENT_SCAN events read; the
 * head, when none. Every event after the position it returns is the stream's to send, so
 * nothing written meanwhile is lost. It reads what the stream would read forwards (one user's
 * public index unless `canSee` shows more), so for a one-user stream how long it reads depends
 * on nothing the stream may not see.
 */
export async function recentStart(events: EventLog, spec: Backwards, n: number): Promise<number> {
  const head = events.head
  let start = head
  let found = 0
  let read = 0
  for await (const page of pagesBackwards(events, spec, head + 1, () => read >= RECENT_SCAN)) {
    for (const ev of page) {
      if (++read > RECENT_SCAN) return start
      if (!spec.canSee(ev) || !spec.accepts(ev)) continue
      start = ev.seq - 1
      if (++found >= n) return start
    }
  }
  return start
}

/** Pages of events with seq < `before` (default: all), newest first, down to the floor or until `stop()`. */
async function* pagesBackwards(events: EventLog, spec: Backwards, before = Infinity, stop: () => boolean): AsyncGenerator<HearthEvent[]> {
  before = Math.min(events.head + 1, before)
  while (!stop() && before > events.floor) {
    const page = spec.onlyUser ? await events.readUserReverse(spec.onlyUser, before, PAGE, readsUnder(spec.canSee)) : await events.readReverse(before, PAGE)
    yield page
    if (page.length < PAGE) return
    before = page[page.length - 1]!.seq
  }
}
