import type { ConsumerRecord } from '../kv/store.js'
import { idOf } from 'hearth-homeserver-client/id'
import { ackFloor } from './ledger.js'

/** A consumer's state as the routes answer it (SPEC §12): its definition, and where it stands. */
export interface ConsumerState {
  id: string
  filters: string[]
  from: ConsumerRecord['definition']['from']
  ack: 'explicit' | 'automatic'
  ackWaitMs: number
  maxDeliver: number
  maxPending: number
  shareProgress: boolean
  /** every matching event at or below it is done */
  ackFloor: string
  /** events out unacked */
  pending: number
  /** of those, events that went out more than once */
  redelivered: number
  /** dead letters kept */
  dead: number
  /** events in the log past the ack floor */
  lag: number
  /** streams open on the instance that answers */
  streams: number
  /** ms since the epoch */
  createdAt: number
  /** the last time retention overtook the consumer: events after `requested` and below `floor` never went out */
  reset: { requested: string; floor: string } | null
}

export function stateOf(r: ConsumerRecord, head: number, streams: number): ConsumerState {
  const floor = ackFloor(r)
  let pending = 0
  let redelivered = 0
  for (const e of r.outstanding) {
    if (e.deliveries > 0) pending++
    if (e.deliveries > 1) redelivered++
  }
  return {
    id: r.id, ...r.definition, ackFloor: idOf(floor), pending, redelivered, dead: r.dead.length,
    lag: Math.max(0, head - floor), streams, createdAt: r.createdAt,
    reset: r.reset === undefined ? null : { requested: String(r.reset.requested), floor: String(r.reset.floor) },
  }
}

/** Whether the consumer is done with `seq` (acked, or out under automatic acks), and not parked as dead. */
export function processed(r: ConsumerRecord, seq: number): boolean | 'dead' {
  if (r.dead.some((d) => d.seq === seq)) return 'dead'
  return seq <= r.cursor && !r.outstanding.some((e) => e.seq === seq)
}
