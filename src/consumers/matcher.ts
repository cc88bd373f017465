import type { HearthEvent } from '../events/event.js'
import { parseCapabilities } from '../auth/capabilities.js'
import { canSee, seesAllOf, type CanSee, type Viewer } from '../feed/visibility.js'
import type { ConsumerRecord } from '../kv/store.js'
import { filterMatches, parseFilters } from '../subscriptions/filter.js'

/** What a consumer carries: the events its filters match, among those it may see. */
export interface Matcher {
  canSee: CanSee
  accepts: (ev: HearthEvent) => boolean
}

/**
 * A consumer may see public events, and its owner's `/priv/` events that the session which
 * created it could read (the `/priv/` rule of src/feed/visibility.ts, for the owner); never
 * anyone else's (SPEC §12).
 */
/**
 * Whether `session` may be handed what the consumer carries (its events, its dead letters):
 * only when it may see every `/priv/` event the session which created it could. Another
 * session of the owner with fewer capabilities gets 403 rather than the owner's private events.
 */
export function mayRead(record: Pick<ConsumerRecord, 'owner' | 'capabilities'>, session: Viewer): boolean {
  return seesAllOf(session, { user: record.owner, capabilities: parseCapabilities(record.capabilities) })
}

export function matcherOf(record: Pick<ConsumerRecord, 'owner' | 'capabilities' | 'definition'>): Matcher {
  const filters = parseFilters(record.definition.filters)
  const viewer = { user: record.owner, capabilities: parseCapabilities(record.capabilities) }
  return {
    canSee: (ev) => canSee(ev, viewer),
    accepts: (ev) => filters.some((f) => filterMatches(f, ev)),
  }
}
