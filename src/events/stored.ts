import type { EventType, HearthEvent } from './event.js'
import { ID_LENGTH, idOf } from 'hearth-homeserver-client/id'
import { MAX_PATH_BYTES } from '../paths.js'

/*
 * The stored form of an event, the same on every engine: what the feed reads without parsing
 * JSON (a small header of its fields), then the event's `/subscribe` data JSON, the bytes a
 * replay sends. So a replay decodes a header and writes stored bytes, where it used to parse
 * JSON and encode it again for every event it sent.
 *
 *   2|<seq>|<type>|<user>|<contentHash>|<size>|<ts>|<homeserver>|<originSeq>|<path length>|<path><data JSON>
 *
 * Empty fields are absent ones (DEL has no contentHash or size; only a relayed event has a
 * homeserver and originSeq). The path, which may hold any character, is last, after its length
 * in UTF-16 units; no other field can hold `|`. Events stored before this layout are their
 * JSON (`{…`): `decodeStored` reads both, so a log half migrated reads whole.
 */
const LAYOUT = '2|'

/** The name of this layout, which an engine records once every stored event is in it. */
export const STORED_LAYOUT = 'header+subscribe-data/2'

/**
 * `/subscribe`'s data line for an event (SPEC §6.3), as JSON.stringify would give it with this
 * key order: `seq` a decimal string (a u64 does not fit a JSON number), no contentHash or size
 * on DEL, `homeserver` and `originSeq` last on a relayed event. Written out by hand: it is the
 * cost of encoding an event, paid once, at the write.
 */
export function subscribeData(ev: HearthEvent): string {
  const id = idOf(ev.seq)
  const user = JSON.stringify(ev.user)
  const path = JSON.stringify(ev.path)
  const uri = `"pubky://${user.slice(1, -1)}${path.slice(1)}`
  const put = ev.type === 'PUT' ? `,"contentHash":${JSON.stringify(ev.contentHash)},"size":${ev.size}` : ''
  const origin = ev.homeserver === undefined ? '' : `,"homeserver":${JSON.stringify(ev.homeserver)},"originSeq":"${ev.originSeq}"`
  return `{"id":"${id}","seq":"${ev.seq}","type":"${ev.type}","user":${user},"path":${path},"uri":${uri}${put},"ts":${ev.ts}${origin}}`
}

/**
 * The most characters an event's stored form can take: its path once in the header and twice
 * in the data JSON (`path` and `uri`), where `"` and `\` are escaped to two characters (paths
 * hold no control characters, the only others JSON escapes), and room for every other field.
 */
export const MAX_STORED_CHARS = 5 * MAX_PATH_BYTES + 1024

/**
 * An event read from storage, with the data JSON it was stored with (its fields are HearthEvent's).
 * Its strings are slices of the stored text it was decoded from, so while it lives all of that
 * text does: `storedLength` characters, about three times its path.
 */
export interface StoredEvent extends HearthEvent {}
export class StoredEvent {
  readonly #data: string
  readonly #storedLength: number

  constructor(seq: number, type: EventType, user: string, path: string, data: string, storedLength: number) {
    this.seq = seq
    this.type = type
    this.user = user
    this.path = path
    this.#data = data
    this.#storedLength = storedLength
  }

  /** the characters of the stored text this event keeps alive */
  get storedLength(): number {
    return this.#storedLength
  }

  /** `subscribeData(this)`, as stored */
  get data(): string {
    return this.#data
  }
}

/** The event's 13-character id: read from its stored data (which opens with it) where it came from storage. */
export function idOfEvent(ev: HearthEvent): string {
  return ev instanceof StoredEvent ? ev.data.slice(ID_AT, ID_AT + ID_LENGTH) : idOf(ev.seq)
}

/** Where the id lies in `subscribeData`'s JSON: after `{"id":"`. */
const ID_AT = 7

/** `subscribeData(ev)`, from storage where the event came from there. */
export function dataOf(ev: HearthEvent): string {
  return ev instanceof StoredEvent ? ev.data : subscribeData(ev)
}

export function encodeStored(ev: HearthEvent): string {
  const opt = (v: string | number | undefined) => (v === undefined ? '' : String(v))
  return (
    `${LAYOUT}${ev.seq}|${ev.type}|${ev.user}|${opt(ev.contentHash)}|${opt(ev.size)}|${ev.ts}|${opt(ev.homeserver)}|${opt(ev.originSeq)}|` +
    `${ev.path.length}|${ev.path}${subscribeData(ev)}`
  )
}

/** Whether a stored event is in the layout `encodeStored` writes (not the JSON of before). */
export function isCurrentLayout(text: string): boolean {
  return text.startsWith(LAYOUT)
}

/** A stored event, in either layout. */
export function decodeStored(text: string): HearthEvent {
  if (!isCurrentLayout(text)) return JSON.parse(text) as HearthEvent
  // the header's nine fields, each up to the next bar (written out: this runs once per event read)
  const b1 = text.indexOf('|', 2)
  const b2 = text.indexOf('|', b1 + 1)
  const b3 = text.indexOf('|', b2 + 1)
  const b4 = text.indexOf('|', b3 + 1)
  const b5 = text.indexOf('|', b4 + 1)
  const b6 = text.indexOf('|', b5 + 1)
  const b7 = text.indexOf('|', b6 + 1)
  const b8 = text.indexOf('|', b7 + 1)
  const b9 = text.indexOf('|', b8 + 1)
  const pathEnd = b9 + 1 + Number(text.slice(b8 + 1, b9))
  const ev = new StoredEvent(Number(text.slice(2, b1)), text.slice(b1 + 1, b2) as EventType, text.slice(b2 + 1, b3), text.slice(b9 + 1, pathEnd), text.slice(pathEnd), text.length)
  if (b4 > b3 + 1) ev.contentHash = text.slice(b3 + 1, b4)
  if (b5 > b4 + 1) ev.size = Number(text.slice(b4 + 1, b5))
  ev.ts = Number(text.slice(b5 + 1, b6))
  if (b7 > b6 + 1) ev.homeserver = text.slice(b6 + 1, b7)
  if (b8 > b7 + 1) ev.originSeq = Number(text.slice(b7 + 1, b8))
  return ev
}

/** The path of a stored event, in either layout, without decoding the rest. */
export function storedPath(text: string): string {
  if (!isCurrentLayout(text)) return (JSON.parse(text) as HearthEvent).path
  let bar = LAYOUT.length - 1
  for (let i = 0; i < 9; i++) bar = text.indexOf('|', bar + 1)
  const lengthStart = text.lastIndexOf('|', bar - 1) + 1
  const length = Number(text.slice(lengthStart, bar))
  return text.slice(bar + 1, bar + 1 + length)
}
