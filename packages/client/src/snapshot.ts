import { z } from 'zod'
import { decimal, logEventSchema, type LogEvent, type ResetInfo } from './events.js'

/*
 * A snapshot, as a follower hands it over (SPEC §13): every file the filters cover, as it is
 * at one position, then `synced`, then the events after it through the iterator. The frames
 * before `synced` are statements of the form "as of seq, this path holds this file" (a PUT)
 * or "as of seq, this path is empty" (a DEL). When the homeserver had to read part of the
 * files at a later position than the rest, it sends the writes in between too, and one of
 * them may be older than a file already handed over for the same path: a consumer keeps, per
 * path, the statement with the highest seq, and then holds exactly the homeserver's files at
 * `synced`.
 */

/** One frame of a snapshot: the state of one file as of `seq`. */
export interface SnapshotFile extends LogEvent {
  /**
   * true: the file as it is at the snapshot's position (always a PUT); `seq` and `ts` are those
   * of the write that made it so. false: a write made while the snapshot was read (a PUT or a
   * DEL), which may be older than what an earlier frame said of the same path.
   */
  snapshot: boolean
  /**
   * The position that resumes the snapshot right after this frame (opaque, starts with `~`).
   * The follower saves it once `onFile` returns; a cursor store kept in the consumer's own
   * database may write it in the same transaction as the file.
   */
  cursor: string
}

/** Why a snapshot begins from its first file. Whatever earlier snapshot frames built is to be dropped. */
export interface SnapshotStart {
  /**
   * - `new`      the cursor store held nothing: the follower's first snapshot
   * - `restart`  the homeserver pruned events the snapshot under way needed, and starts it again
   * - `reset`    the homeserver pruned events after the cursor, and the follower takes a new
   *              snapshot instead (`onReset: 'snapshot'`)
   */
  cause: 'new' | 'restart' | 'reset'
  /** for `restart` and `reset`: what was pruned */
  reset?: ResetInfo
}

/** The snapshot is complete: the consumer holds the homeserver's files as of `seq`. */
export interface SnapshotSynced {
  /** the id of `seq`: the cursor from here on, saved once `onSynced` returns */
  id: string
  seq: string
  /** the files the homeserver counts as sent on the stream that reached `synced` */
  files: number
}

/**
 * Where a follower hands a snapshot. Each callback is awaited before the next frame, and the
 * position moves past a frame only once its callback returned, so a follower stopped or killed
 * in the middle resumes the snapshot after the last frame processed (at least once: a frame
 * may come again after a crash, with the same seq).
 */
export interface SnapshotHandler {
  /** a snapshot begins from its first file: forget what earlier snapshot frames built */
  onStart(start: SnapshotStart): void | Promise<void>
  /** one frame: keep it when its seq is higher than what is held for its path (a DEL: the path is empty) */
  onFile(file: SnapshotFile): void | Promise<void>
  /** after the last frame; the events after `seq` follow through the iterator */
  onSynced?(synced: SnapshotSynced): void | Promise<void>
}

/** A resume token as this client accepts one: printable ASCII, so it can go back in a header. */
export const TOKEN = /^~[\x21-\x7e]{1,8192}$/

export function isToken(text: string): boolean {
  return TOKEN.test(text)
}

export const snapshotFrameSchema = logEventSchema.extend({ snapshot: z.literal(true).optional() })

export const syncedSchema = z.object({ seq: decimal, files: z.number().int().nonnegative() })
