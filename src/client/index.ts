/**
 * `hearth-homeserver/client`: follow a homeserver's event log from plain Node. Imports only
 * src/client/ and src/shared/, nothing of the server, so an indexer can depend on this entry
 * point alone.
 */
export { follow, Follower, type FollowOptions } from './follow.js'
export { FileCursorStore, MemoryCursorStore, type CursorStore } from './cursor-store.js'
export {
  FollowHttpError, FollowProtocolError, FutureCursorError, ResetError,
  type FollowEvent, type FollowState, type LogEvent, type ResetInfo,
} from './events.js'
export type { SnapshotFile, SnapshotHandler, SnapshotStart, SnapshotSynced } from './snapshot.js'
export { idOf, parseCursor, seqOfId } from '../shared/id.js'
export { HomeserverClient, HttpError } from './homeserver.js'
