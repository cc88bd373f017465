import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/log.js'
import { framesOf } from './frames.js'
import type { SseStream } from './sse.js'
import { PAGE } from './subscriber.js'

/**
 * A newest-first replay (`/events-stream?reverse=true`): reads the log backwards from the
 * head, sends what `accepts` takes, pauses whenever the socket is backed up, and ends at the
 * floor or after `limit` events. Never live.
 */
export async function replayReverse(log: EventLog, stream: SseStream, opts: { onlyUser?: string; limit?: number; accepts: (ev: HearthEvent) => boolean }): Promise<void> {
  let before = log.head + 1
  let sent = 0
  while (!stream.closed && before > log.floor) {
    const page = opts.onlyUser ? await log.readUserReverse(opts.onlyUser, before, PAGE) : await log.readReverse(before, PAGE)
    for (const ev of page) {
      if (!opts.accepts(ev)) continue
      stream.write(framesOf(ev).eventsStream)
      if (opts.limit !== undefined && ++sent >= opts.limit) return stream.end()
    }
    if (page.length < PAGE) break
    before = page[page.length - 1]!.seq
    if (stream.backedUp) await stream.drained()
  }
  stream.end()
}
