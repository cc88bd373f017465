import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/log.js'
import { EventFrames } from './frames.js'
import { EVENTS_STREAM } from './wire.js'
import type { SseStream } from './sse.js'
import { PAGE } from './pages.js'
import type { FeedObserver } from './observer.js'
import { readsUnder, type CanSee } from './visibility.js'

export interface ReverseSpec {
  /** the one user whose index may be read instead of the whole log */
  onlyUser?: string
  /** exclusive: only events below it are read (default: everything up to the head) */
  before?: number
  limit?: number
  canSee: CanSee
  accepts: (ev: HearthEvent) => boolean
}

/**
 * A newest-first replay (`/events-stream?reverse=true`): reads the log backwards from the
 * head, sends what `canSee` and `accepts` take, waits whenever the socket holds HIGH_WATER bytes, and
 * ends at the floor or after `limit` events. Never live.
 */
export async function replayReverse(log: EventLog, stream: SseStream, spec: ReverseSpec, observer: FeedObserver): Promise<void> {
  let before = Math.min(log.head + 1, spec.before ?? Infinity)
  let sent = 0
  let batch = ''
  let bytes = 0
  let events = 0
  const flush = () => {
    if (batch !== '') stream.write(batch)
    if (events > 0) observer.delivered(EVENTS_STREAM.protocol, 'replay', events)
    batch = ''
    bytes = 0
    events = 0
  }
  while (!stream.closed && before > log.floor) {
    const page = spec.onlyUser ? await log.readUserReverse(spec.onlyUser, before, PAGE, readsUnder(spec.canSee)) : await log.readReverse(before, PAGE)
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
      events++
      if (spec.limit !== undefined && ++sent >= spec.limit) break
    }
    flush()
    if (page.length < PAGE || (spec.limit !== undefined && sent >= spec.limit)) break
    before = page[page.length - 1]!.seq
  }
  stream.end()
}
