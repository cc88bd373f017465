import { concat } from 'hearth-homeserver-client/bytes'
/**
 * The small slice of the DNS wire format (RFC 1035) that pkarr packets need: a message with
 * resource records, and the SVCB/HTTPS record data of RFC 9460. Names are written without
 * compression; the reader follows compression pointers, since other publishers use them.
 */

export const TYPE_HTTPS = 65
export const TYPE_SVCB = 64
export const CLASS_IN = 1
/** QR (a response) and AA (authoritative), as pkarr's own packets carry */
export const FLAGS_AUTHORITATIVE_REPLY = 0x8400

export class DnsError extends Error {
  override name = 'DnsError'
}

export interface ResourceRecord {
  name: string
  type: number
  class: number
  ttl: number
  rdata: Uint8Array
}

/** A record as read back: `offset` is where its data starts in the message. */
export interface DecodedRecord extends ResourceRecord {
  offset: number
}

export interface Message {
  id: number
  flags: number
  questions: { name: string; type: number; class: number }[]
  answers: DecodedRecord[]
  authorities: DecodedRecord[]
  additionals: DecodedRecord[]
}

export interface Svcb {
  priority: number
  /** '.' for the owner's own name */
  target: string
  params: Map<number, Uint8Array>
}

const ascii = new TextEncoder()
const text = new TextDecoder('latin1')

/** A domain name as length-prefixed labels; '' and '.' are the root. */
export function encodeName(name: string): Uint8Array {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name
  const labels = trimmed === '' ? [] : trimmed.split('.')
  const parts: number[] = []
  for (const label of labels) {
    const bytes = ascii.encode(label)
    if (bytes.length === 0 || bytes.length > 63) throw new DnsError(`invalid label in ${JSON.stringify(name)}`)
    parts.push(bytes.length, ...bytes)
  }
  parts.push(0)
  if (parts.length > 255) throw new DnsError('name longer than 255 bytes')
  return Uint8Array.from(parts)
}

export function encodeSvcb(svcb: Svcb): Uint8Array {
  const keys = [...svcb.params.keys()].sort((a, b) => a - b)
  const target = encodeName(svcb.target)
  const size = 2 + target.length + keys.reduce((n, k) => n + 4 + svcb.params.get(k)!.length, 0)
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  view.setUint16(0, svcb.priority)
  out.set(target, 2)
  let at = 2 + target.length
  // RFC 9460 requires the keys in strictly increasing order
  for (const key of keys) {
    const value = svcb.params.get(key)!
    view.setUint16(at, key)
    view.setUint16(at + 2, value.length)
    out.set(value, at + 4)
    at += 4 + value.length
  }
  return out
}

/** A message with answers only and no questions, as pkarr publishes. */
export function encodeMessage(answers: ResourceRecord[], flags = FLAGS_AUTHORITATIVE_REPLY): Uint8Array {
  const chunks: Uint8Array[] = []
  const header = new Uint8Array(12)
  const hv = new DataView(header.buffer)
  hv.setUint16(2, flags)
  hv.setUint16(6, answers.length)
  chunks.push(header)
  for (const rr of answers) {
    if (rr.rdata.length > 0xffff) throw new DnsError('record data too long')
    const fixed = new Uint8Array(10)
    const fv = new DataView(fixed.buffer)
    fv.setUint16(0, rr.type)
    fv.setUint16(2, rr.class)
    fv.setUint32(4, rr.ttl)
    fv.setUint16(8, rr.rdata.length)
    chunks.push(encodeName(rr.name), fixed, rr.rdata)
  }
  return concat(...chunks)
}


/** Reads a possibly compressed name at `offset`; returns it and the offset just past it. */
function readName(msg: Uint8Array, offset: number): [string, number] {
  const labels: string[] = []
  let at = offset
  let end = -1
  let jumps = 0
  for (;;) {
    if (at >= msg.length) throw new DnsError('name runs past the message')
    const len = msg[at]!
    if (len === 0) {
      if (end < 0) end = at + 1
      break
    }
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= msg.length) throw new DnsError('truncated compression pointer')
      const target = ((len & 0x3f) << 8) | msg[at + 1]!
      // pointers only go backwards, which bounds the walk
      if (target >= at || ++jumps > 64) throw new DnsError('bad compression pointer')
      if (end < 0) end = at + 2
      at = target
      continue
    }
    if (len > 63) throw new DnsError('bad label length')
    if (at + 1 + len > msg.length) throw new DnsError('label runs past the message')
    labels.push(text.decode(msg.subarray(at + 1, at + 1 + len)))
    at += 1 + len
  }
  return [labels.length === 0 ? '.' : labels.join('.'), end]
}

/** Parses a whole message, rejecting anything malformed or with trailing bytes. */
export function decodeMessage(msg: Uint8Array): Message {
  if (msg.length < 12) throw new DnsError('message shorter than its header')
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength)
  const counts = [view.getUint16(4), view.getUint16(6), view.getUint16(8), view.getUint16(10)] as const
  let at = 12
  const questions: Message['questions'] = []
  for (let i = 0; i < counts[0]; i++) {
    const [name, next] = readName(msg, at)
    if (next + 4 > msg.length) throw new DnsError('truncated question')
    questions.push({ name, type: view.getUint16(next), class: view.getUint16(next + 2) })
    at = next + 4
  }
  const sections: DecodedRecord[][] = [[], [], []]
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]!; i++) {
      const [name, next] = readName(msg, at)
      if (next + 10 > msg.length) throw new DnsError('truncated record')
      const length = view.getUint16(next + 8)
      const start = next + 10
      if (start + length > msg.length) throw new DnsError('record data runs past the message')
      sections[s]!.push({
        name,
        type: view.getUint16(next),
        // the top bit is mDNS cache-flush, which pkarr records may carry
        class: view.getUint16(next + 2) & 0x7fff,
        ttl: view.getUint32(next + 4),
        rdata: msg.subarray(start, start + length),
        offset: start,
      })
      at = start + length
    }
  }
  if (at !== msg.length) throw new DnsError('trailing bytes after the last record')
  return { id: view.getUint16(0), flags: view.getUint16(2), questions, answers: sections[0]!, authorities: sections[1]!, additionals: sections[2]! }
}

/**
 * SVCB/HTTPS record data found at `start` in `message` (pass the record data alone with
 * start 0 when there is no message); the message lets compression pointers resolve.
 */
export function decodeSvcb(message: Uint8Array, start = 0, length = message.length - start): Svcb {
  const end = start + length
  if (length < 3 || end > message.length) throw new DnsError('SVCB data too short')
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength)
  const [target, afterTarget] = readName(message, start + 2)
  const params = new Map<number, Uint8Array>()
  let at = afterTarget
  let previous = -1
  while (at < end) {
    if (at + 4 > end) throw new DnsError('truncated SvcParam')
    const key = view.getUint16(at)
    const size = view.getUint16(at + 2)
    if (key <= previous) throw new DnsError('SvcParam keys out of order')
    if (at + 4 + size > end) throw new DnsError('SvcParam value runs past the record')
    params.set(key, message.slice(at + 4, at + 4 + size))
    previous = key
    at += 4 + size
  }
  if (at !== end) throw new DnsError('SVCB target runs past the record')
  return { priority: view.getUint16(start), target, params }
}
