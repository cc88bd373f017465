/**
 * `hearth-homeserver-client`: follow a Hearth homeserver's event log, in Node or in a browser.
 * Nothing of the server: three runtime dependencies (eventsource-parser, zod, @noble/ed25519).
 */
export { follow, Follower, type FollowOptions } from './follow.js'
export { FileCursorStore, MemoryCursorStore, WebStorageCursorStore, type CursorStore } from './cursor-store.js'
export {
  FollowHttpError, FollowProtocolError, FutureCursorError, ResetError,
  type FollowEvent, type FollowState, type LogEvent, type ResetInfo,
} from './events.js'
export type { SnapshotFile, SnapshotHandler, SnapshotStart, SnapshotSynced } from './snapshot.js'
export { idOf, parseCursor, seqOfId } from './id.js'
export { HomeserverClient, HttpError } from './homeserver.js'
export { keypairOf, secretFromHex, type Keypair } from './keys.js'
export { signAuthToken } from './auth-token.js'
export { consume, ConsumerWorker, type ConsumeOptions, type ConsumedEvent } from './consume.js'
export { Consumers, type AckBody, type ConsumerDefinition, type ConsumerOwner, type ConsumerState } from './consumers.js'
export { newConsumerId } from './consumer-id.js'
