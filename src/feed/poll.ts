import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import type { CanSee } from './visibility.js'

/**
 * Events one poll reads at most, seen or not: twice the largest page, so a full page is
 * found among a few hidden events, and a stretch of hidden ones costs each request a bound.
 */
export const MAX_SCAN = 2000

export interface PollPage {
  events: HearthEvent[]
  /** the last seq this poll dealt with; the cursor it started from when it read nothing */
  cursor: number
}

/**
 * One page of a polling feed (`/events/`): up to `limit` events after `after` that `canSee`
 * lets through, in seq order. The cursor moves past hidden events too, so a poller never
 * reads them again; a full page stops at its last event.
 */
export async function pollPage(events: EventLog, after: number, limit: number, canSee: CanSee): Promise<PollPage> {
  const seen: HearthEvent[] = []
  let cursor = after
  let scanned = 0
  while (seen.length < limit && scanned < MAX_SCAN && cursor < events.head) {
    const { events: page } = await events.read(cursor, Math.min(MAX_SCAN - scanned, Math.max(limit - seen.length, 64)))
    if (page.length === 0) break
    for (const ev of page) {
      cursor = ev.seq
      scanned++
      if (canSee(ev)) seen.push(ev)
      if (seen.length === limit) break
    }
  }
  return { events: seen, cursor }
}
