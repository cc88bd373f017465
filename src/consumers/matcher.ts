import type { HearthEvent } from '../events/event.js'
import { parseCapabilities } from '../auth/capabilities.js'
import { canSee, type CanSee } from '../feed/visibility.js'
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
export function matcherOf(record: Pick<ConsumerRecord, 'owner' | 'capabilities' | 'definition'>): Matcher {
  const filters = parseFilters(record.definition.filters)
  const viewer = { user: record.owner, capabilities: parseCapabilities(record.capabilities) }
  return {
    canSee: (ev) => canSee(ev, viewer),
    accepts: (ev) => filters.some((f) => filterMatches(f, ev)),
  }
}
