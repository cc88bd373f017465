import { z } from 'zod'
import type { ConsumerDefinition } from '../kv/consumer-record.js'
import { fail } from '../errors.js'
import { parseCursor } from 'hearth-homeserver-client/id'
import { MAX_FILTERS, parseFilters } from '../subscriptions/filter.js'

/** The Crockford base32 alphabet: ULIDs and event ids share it. */
const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/
/** How far ahead of the server's clock a consumer id's time may lie. */
const FUTURE_MS = 24 * 3600_000

/** A consumer id (a ULID made by the client): refused when malformed, or more than a day ahead. */
export function checkConsumerId(id: string, now: number): string {
  if (!ULID.test(id)) fail('InvalidConsumerId', 'A consumer id is a ULID: 26 characters of Crockford base32')
  if (ulidTime(id) > now + FUTURE_MS) fail('InvalidConsumerId', 'The time of this consumer id is more than a day ahead')
  return id
}

/** The ms since the epoch that a ULID's first 10 characters encode. */
export function ulidTime(id: string): number {
  const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
  let t = 0
  for (const c of id.slice(0, 10)) t = t * 32 + ALPHABET.indexOf(c)
  return t
}

export const fromSchema = z.union([
  z.literal('new').describe('the head of the log when the consumer is made'),
  z.literal('start').describe('the oldest event kept'),
  z.object({ after: z.string().describe('an event id or decimal seq: the consumer starts after it') }).strict(),
])

/** `PUT /consumers/<ulid>`'s body; what is left out takes the default shown. */
export const definitionSchema = z.object({
  filters: z.array(z.string()).min(1).max(MAX_FILTERS).default(['*']).describe('`/subscribe` filters, 1 to 64 (a union)'),
  from: fromSchema.default('new'),
  ack: z.enum(['explicit', 'automatic']).default('explicit'),
  ackWaitMs: z.number().int().min(100).max(3_600_000).default(30_000).describe('explicit: an event unacked this long goes out again'),
  maxDeliver: z.number().int().min(1).max(1000).default(5).describe('deliveries before an event is dead'),
  maxPending: z.number().int().min(1).max(10_000).default(1000).describe('events out unacked at once, at most'),
  shareProgress: z.boolean().default(false).describe('anyone may ask `acked`; the consumer then carries public events only'),
}).strict()

/** A definition as stored and compared: defaults applied (an empty body takes them all), filters in their canonical text. */
export function parseDefinition(body: unknown): ConsumerDefinition {
  const d = definitionSchema.parse(body === undefined ? {} : body)
  const filters = parseFilters(d.filters).map((f) => f.text)
  if (typeof d.from === 'object') position(d.from, Number.MAX_SAFE_INTEGER)
  return { ...d, filters }
}

/** Whether two definitions are the same consumer (a repeated PUT). */
export function sameDefinition(a: ConsumerDefinition, b: ConsumerDefinition): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** The cursor a `from` names (exclusive), given the log's head and floor. */
export function position(from: ConsumerDefinition['from'], head: number, floor = 1): number {
  if (from === 'new') return head
  if (from === 'start') return floor - 1
  const cursor = parseCursor(from.after)
  if (cursor === undefined) fail('InvalidCursor', `Invalid cursor: ${from.after}`)
  if (cursor > BigInt(head)) fail('FutureCursor', `Cursor ${from.after} is past the head of the log`, { head: String(head) })
  return Number(cursor)
}
