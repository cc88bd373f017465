/**
 * What the Store keeps of a durable consumer (SPEC §12): its definition, its position, the
 * deliveries it has out (each with its holder and deadline: the lease), and its dead letters.
 * The engines change a record only under a lock (`Store.updateConsumer`), so every lease is
 * claimed in one transaction whatever the instance; they store it in parts (consumer-parts.ts),
 * so a change writes only the entries it touched. Its size is bounded by `maxPending` +
 * READ_AHEAD outstanding entries and DEAD_KEPT dead letters: it does not grow with the log.
 */
export interface ConsumerRecord {
  /** the z32 key of the user who owns it */
  owner: string
  /** the ULID the owner chose */
  id: string
  /** ms since the epoch */
  createdAt: number
  definition: ConsumerDefinition
  /** the capabilities of the session that created it: what of the owner's `/priv/` it may carry */
  capabilities: string
  /** every matching event ≤ cursor was read into `outstanding`, or is done */
  cursor: number
  /** events read and not done, in seq order: out (delivered, unacked) or waiting to go out */
  outstanding: Outstanding[]
  /** events parked as dead, oldest first, the newest DEAD_KEPT of them */
  dead: DeadLetter[]
  /** the last time retention overtook the position: events after `requested` and below `floor` were never delivered */
  reset?: { requested: number; floor: number }
}

export interface ConsumerDefinition {
  filters: string[]
  from: 'new' | 'start' | { after: string }
  ack: 'explicit' | 'automatic'
  ackWaitMs: number
  maxDeliver: number
  maxPending: number
  shareProgress: boolean
}

export interface Outstanding {
  seq: number
  /** the event's user: an event waits while an earlier one of the same user is out */
  user: string
  /** times handed to a stream (0: not yet) */
  deliveries: number
  /** the stream that holds it while its ack wait runs */
  holder?: string
  /** ms since the epoch when the hold ends */
  deadline?: number
}

export interface DeadLetter {
  seq: number
  deliveries: number
  reason: 'maxDeliver' | 'term'
}

/** How many dead letters a consumer keeps: the oldest go first. */
export const DEAD_KEPT = 1000

/** What a change made under the record's lock returns: a new record to store (none: unchanged) and a result. */
export interface ConsumerChange<T> {
  record?: ConsumerRecord
  result: T
}

export type CreateConsumerResult = 'created' | 'exists' | 'full'
