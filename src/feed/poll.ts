import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import { PAGE, type LogPages } from './pages.js'
import { LogReader } from './reader.js'
import type { CanSee } from './visibility.js'

/**
 * Events one poll reads at most, seen or not: eight of the reader's pages, so a stretch of
 * hidden events costs each request a bound, and a full page is found among a few hidden ones.
 */
export const MAX_SCAN = 8 * PAGE

export interface PollPage {
  events: HearthEvent[]
  /** the last seq this poll dealt with; the cursor it started from when it read nothing */
  cursor: number
}

/**
 * One page of a polling feed (`/events/`), read through the log reader: up to `limit` events
 * after `after` that `canSee` lets through, in seq order. The cursor moves past hidden events
 * too, so a poller never reads them again; a full page stops at its last event, and a page of
 * `limit` 0 reads nothing and leaves the cursor where it was. A stretch
 * pruned meanwhile is passed over (the text feed has no frame to say so, as upstream's has none).
 */
export async function pollPage(events: EventLog, pages: LogPages, after: number, limit: number, canSee: CanSee): Promise<PollPage> {
  const reader = new LogReader(events, pages, { after, canSee, accepts: () => true })
  const seen: HearthEvent[] = []
  try {
    while (seen.length < limit && reader.cursor - after < MAX_SCAN && !reader.caughtUp) {
      const all = await reader.step({ reset: () => {}, event: (ev) => seen.length < limit && seen.push(ev) > 0 })
      if (!all) break
    }
  } finally {
    reader.close()
  }
  // a full page ends on its last event; a page of none (limit 0) has no last event and moves nothing
  const last = seen.length === limit ? seen.at(-1) : undefined
  return { events: seen, cursor: last?.seq ?? (limit === 0 ? after : reader.cursor) }
}
