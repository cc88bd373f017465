import type { HearthEvent } from '../events/event.js'
import { parseCapabilities } from '../auth/capabilities.js'
import { fail } from '../errors.js'
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
 * Whether `session` may use the consumer: only when it may see every `/priv/` event the
 * session which created it could, since its events, dead letters and state (an ack floor that
 * stops before a private event) tell of them. Another session of the owner with fewer
 * capabilities gets 403 on every route of the consumer, and the list leaves it out.
 */
export function mayRead(record: Pick<ConsumerRecord, 'owner' | 'capabilities'>, session: Viewer): boolean {
  return seesAllOf(session, { user: record.owner, capabilities: parseCapabilities(record.capabilities) })
}

/** 403 unless `session` may use the consumer (`mayRead`). */
export function checkReadable(record: Pick<ConsumerRecord, 'owner' | 'capabilities'>, session: Viewer): void {
  if (!mayRead(record, session)) fail('Forbidden', 'This session may not read all the /priv/ events of the session that made the consumer')
}

export function matcherOf(record: Pick<ConsumerRecord, 'owner' | 'capabilities' | 'definition'>): Matcher {
  const filters = parseFilters(record.definition.filters)
  const viewer = { user: record.owner, capabilities: parseCapabilities(record.capabilities) }
  return {
    canSee: (ev) => canSee(ev, viewer),
    accepts: (ev) => filters.some((f) => filterMatches(f, ev)),
  }
}
