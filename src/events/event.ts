/**
 * One entry of the log. `seq` is a JS number: it is a u64 on the wire, but at a million
 * events a second it would take 285 years to pass 2^53, so arithmetic stays in doubles.
 */
export type EventType = 'PUT' | 'DEL'

export interface HearthEvent {
  seq: number
  type: EventType
  user: string
  path: string
  /** base64 blake3 of the content, PUT only */
  contentHash?: string
  /** bytes, PUT only */
  size?: number
  /** ms since the epoch, when the event was committed (on its origin, for a relayed event) */
  ts: number
  /** a relayed event: the z32 key of the homeserver it was written on */
  homeserver?: string
  /** a relayed event: its seq in that homeserver's log */
  originSeq?: number
}

export function eventUri(ev: Pick<HearthEvent, 'user' | 'path'>): string {
  return `pubky://${ev.user}${ev.path}`
}
