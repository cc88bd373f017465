import { z } from 'zod'

/** One event of the log, as `/subscribe` sends it. `seq` is decimal text: a u64 overflows a JSON number. */
export interface LogEvent {
  /** 13-character id; ids sort as their seqs do */
  id: string
  seq: string
  type: 'PUT' | 'DEL'
  user: string
  path: string
  /** `pubky://<user><path>` */
  uri: string
  /** base64 blake3 of the content, PUT only */
  contentHash?: string
  /** bytes, PUT only */
  size?: number
  /** ms since the epoch, when the homeserver committed the event */
  ts: number
  /** from a relay: the z32 key of the homeserver the event was written on */
  homeserver?: string
  /** from a relay: the event's seq on that homeserver, decimal */
  originSeq?: string
}

/** An event handed out by `follow()`. */
export interface FollowEvent extends LogEvent {
  /**
   * Marks the event as processed. The stored cursor only ever moves over a run of
   * acknowledged events with no gap, so acking out of order is safe but takes effect only
   * once every earlier event is acked too. Acking twice, or after the follower closed, does
   * nothing.
   */
  ack(): void
}

/**
 * - `connecting`   opening the stream (first time or after a drop, including the backoff wait)
 * - `catching-up`  connected; has not yet delivered everything up to the head seen at connect
 *                  (with a snapshot: until its `synced` at least)
 * - `live`         has delivered up to that head; new events arrive as they are written
 * - `closed`       ended: aborted, returned from, or failed
 */
export type FollowState = 'connecting' | 'catching-up' | 'live' | 'closed'

/** Events between `requested` (exclusive) and `floor` (exclusive) were pruned by the homeserver. */
export interface ResetInfo {
  /** the cursor the follower asked to resume after, decimal */
  requested: string
  /** the oldest retained seq, decimal: the next event delivered has seq ≥ floor */
  floor: string
}

/** The homeserver no longer holds events the follower has not processed yet. */
export class ResetError extends Error {
  readonly requested: string
  readonly floor: string

  constructor(info: ResetInfo) {
    super(`events after ${info.requested} and before ${info.floor} were pruned by the homeserver`)
    this.name = 'ResetError'
    this.requested = info.requested
    this.floor = info.floor
  }
}

/** The cursor is past the homeserver's head: a different server, or one restored from an older backup. */
export class FutureCursorError extends Error {
  readonly cursor: string
  readonly head: string | undefined

  constructor(cursor: string, head: string | undefined, message: string) {
    super(message)
    this.name = 'FutureCursorError'
    this.cursor = cursor
    this.head = head
  }
}

/** The homeserver refused the request for a reason retrying cannot fix (a bad filter, say). */
export class FollowHttpError extends Error {
  readonly status: number
  readonly code: string | undefined

  constructor(status: number, code: string | undefined, message: string) {
    super(message)
    this.name = 'FollowHttpError'
    this.status = status
    this.code = code
  }
}

/** The stream said something this client cannot read: not a Hearth homeserver, or a broken one. */
export class FollowProtocolError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'FollowProtocolError'
  }
}

export const decimal = z.string().regex(/^(0|[1-9][0-9]{0,19})$/)

export const logEventSchema = z.object({
  id: z.string().length(13),
  seq: decimal,
  type: z.enum(['PUT', 'DEL']),
  user: z.string(),
  path: z.string(),
  uri: z.string(),
  contentHash: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  ts: z.number(),
  homeserver: z.string().optional(),
  originSeq: decimal.optional(),
})

/** `snapshot: 'restart'`: sent in the middle of a snapshot, which starts again (SPEC §13) */
export const resetSchema = z.object({ requested: decimal, floor: decimal, snapshot: z.literal('restart').optional() })

export const infoSchema = z.object({ events: z.object({ head: decimal }) })

export const errorBodySchema = z.object({ error: z.string(), message: z.string().optional(), head: z.string().optional() })
