import { subscribeData } from '../events/stored.js'
import type { FileEntry } from '../kv/store.js'
import { idOf } from 'hearth-homeserver-client/id'

/*
 * The frames of a snapshot stream (SPEC §13) and the resume tokens in their ids. A token says
 * how far the stream got, so a reconnect that sends it (EventSource does) goes on from there:
 *
 *   ~f.<at>.<key>        the snapshot taken at seq `at` has sent every file up to file key
 *                        `key` (base64url), in key order
 *   ~e.<at>.<upTo>.<seq> every file was sent, read at positions up to `upTo`; the events after
 *                        `at` have been sent up to `seq`, and `synced` comes once past `upTo`
 *
 * After `synced` the ids are the plain ids of §6.3. A token is opaque to clients; the server
 * checks every part of it.
 */

export type SnapshotToken =
  | { kind: 'files'; at: number; after: string }
  | { kind: 'events'; at: number; upTo: number; after: number }

const SEQ = /^(0|[1-9]\d{0,15})$/

export function encodeToken(token: SnapshotToken): string {
  return token.kind === 'files'
    ? `~f.${token.at}.${Buffer.from(token.after).toString('base64url')}`
    : `~e.${token.at}.${token.upTo}.${token.after}`
}

/** A token, or undefined when `text` is not one (or not a well-formed one). */
export function decodeToken(text: string): SnapshotToken | undefined {
  const parts = text.split('.')
  const seq = (s: string | undefined) => (s !== undefined && SEQ.test(s) && Number.isSafeInteger(Number(s)) ? Number(s) : undefined)
  if (parts[0] === '~f' && parts.length === 3) {
    const at = seq(parts[1])
    const after = /^[A-Za-z0-9_-]+$/.test(parts[2]!) ? Buffer.from(parts[2]!, 'base64url').toString() : undefined
    if (at === undefined || after === undefined || encodeToken({ kind: 'files', at, after }) !== text) return undefined
    return { kind: 'files', at, after }
  }
  if (parts[0] === '~e' && parts.length === 4) {
    const [at, upTo, after] = [seq(parts[1]), seq(parts[2]), seq(parts[3])]
    if (at === undefined || upTo === undefined || after === undefined || at > upTo || after < at) return undefined
    return { kind: 'events', at, upTo, after }
  }
  return undefined
}

/** One file of the snapshot: the event that made it what it is, marked as part of the snapshot. */
export function fileFrame(file: FileEntry, seq: number, id: string): string {
  const data = subscribeData({ seq, type: 'PUT', user: file.user, path: file.path, contentHash: file.meta.hash, size: file.meta.size, ts: file.meta.mtime })
  return `id: ${id}\nevent: PUT\ndata: ${data.slice(0, -1)},"snapshot":true}\n\n`
}

/** The snapshot is complete at `seq`: a reconnect with this id resumes live after it. */
export function syncedFrame(seq: number, files: number): string {
  return `id: ${idOf(seq)}\nevent: synced\ndata: {"seq":"${seq}","files":${files}}\n\n`
}

/** An event of the stretch between the snapshot's positions, sent before `synced`, under a token. */
export function eventFrame(data: string, type: string, id: string): string {
  return `id: ${id}\nevent: ${type}\ndata: ${data}\n\n`
}
