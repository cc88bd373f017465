/** Event ids and cursors: one codec, kept with the client so that both ends share it. */
export { ID_LENGTH, MAX_SEQ, idOf as encodeId, seqOfId as decodeId, parseCursor, parseDecimal } from '../shared/id.js'
