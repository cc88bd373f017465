import type { ConsumerRecord } from '../kv/store.js'
import type { ConsumerState } from 'hearth-homeserver-client'
import { idOf } from 'hearth-homeserver-client/id'
import { ackFloor, tally } from './ledger.js'

/** A consumer's state as the routes answer it (SPEC §12): the client package's type, which reads it. */
export type { ConsumerState }

export function stateOf(r: ConsumerRecord, head: number, streams: number): ConsumerState {
  const floor = ackFloor(r)
  const { pending, redelivered } = tally(r)
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
