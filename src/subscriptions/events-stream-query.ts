import { decodePublicKey } from '../auth/keys.js'
import { fail } from '../errors.js'
import { ID_LENGTH, MAX_SEQ, seqOfId } from 'hearth-homeserver-client/id'
import { normalForm } from '../paths.js'
import { filterText, type Filter } from './filter.js'

/*
 * `GET /events-stream`, as upstream pubky-core serves it. Facts read in github.com/pubky/pubky-core:
 * pubky-homeserver/src/client_server/routes/events.rs (tag v0.6.0 and main), .../persistence/files/
 * events/{path_filter,events_service,events_repository,events_entity}.rs, .../client_server/auth/
 * authorization.rs, .../shared/webdav/webdav_path.rs, .../shared/http_error.rs, .../constants.rs,
 * e2e/src/tests/events/stream_validation.rs; frame bytes from axum 0.8.6 src/response/sse.rs.
 *
 * Query, read in order with form-urlencoded decoding; unknown keys are ignored:
 * - `user=<z32>[:<cursor>]`, repeatable, split at the first `:`; empty values skipped.
 * - `limit`: a u16 ("Invalid limit: <v>"); `0` gives "limit must be at least 1" (main; v0.6.0
 *   accepted 0). It counts events over the whole stream, replay and live; no default, no cap.
 * - `live`, `reverse`: true only for `true` or `1`, anything else false, never an error.
 * - `path`, repeatable (v0.6.0: one, a plain prefix); empty values ignored; a `/` is prepended
 *   when missing; normalised like storage paths (Hearth: by the same rules, src/paths.ts, where
 *   a trailing `.` names the folder, as in storage). It is matched against the stored path, which
 *   includes `/pub/`. Ending in `/` = that folder and below; otherwise exactly that path.
 *   No path means `/pub/` (main), so private events never leak by default.
 * Errors, plain text bodies, checked in this order (all 400 unless noted):
 * 1. a bad limit, at the point it appears in the query;
 * 2. "Cannot use live mode with reverse ordering";
 * 3. "Invalid public key: <key part>" for the first bad user;
 * 4. "user parameter is required"; 5. "Too many users. Maximum allowed: 50" (counted
 *    before duplicates collapse); 6. "Invalid path: <value with leading />";
 * 7. per path (main): outside `/pub/` and `/priv/` → 403 "Reading from directories other than
 *    '/pub/' and '/priv/' is forbidden"; `/priv/` without a session → 401 "Authentication
 *    required to read private storage"; with more than one `user` → 403 "A private read must
 *    be scoped to exactly one user"; another user's session → 403 "Session user does not
 *    match target tenant"; no read capability → 403 "Session does not have read access to path";
 * 8. per user in order: not signed up here → 404 "Not Found"; then its cursor → "Invalid
 *    cursor: <text>". A cursor is a u64 in decimal (Rust parse: optional `+`, leading zeros ok,
 *    no `-`), or a legacy 13-character timestamp. A cursor past the head is fine: no events.
 * Stream: `text/event-stream`, `cache-control: no-cache`, no `retry:`; keepalive `:\n\n` after
 * 15 s of silence. Each event: `event: PUT|DEL`, then data lines `pubky://<z32><path>`,
 * `cursor: <seq>`, and for PUT `content_hash: <standard base64 of the 32-byte blake3>`.
 * Replay reads pages of 100 (across users, ordered by seq; `id > cursor` per user, or
 * `id < cursor` newest first with reverse), sending each and advancing that user's cursor,
 * until a page is empty: then it closes, or with live it follows new events from the same users
 * and paths. Duplicate users: the last cursor wins. Upstream closes a live stream whose
 * client lags 1000 events behind; Hearth instead catches it up from the log.
 *
 * Hearth reads a 13-character cursor as an event id (same bytes as the legacy timestamps).
 */
export const MAX_STREAM_USERS = 50
export const STREAM_PAGE = 100
export const DEFAULT_STREAM_PATH: StreamPath = Object.freeze({ path: '/pub/', prefix: true })
const MAX_LIMIT = 0xffff

export interface StreamUser {
  user: string
  /** the text after the first `:`, parsed later (after the user is found) as upstream does */
  cursor?: string
}

export interface StreamPath {
  path: string
  /** the path ended in `/`: that folder and everything below */
  prefix: boolean
}

export interface EventsStreamQuery {
  users: StreamUser[]
  paths: StreamPath[]
  limit?: number
  live: boolean
  reverse: boolean
}

export function parseEventsStreamQuery(query: string | URLSearchParams): EventsStreamQuery {
  const params = typeof query === 'string' ? new URLSearchParams(query) : query
  const raw: string[] = []
  const rawPaths: string[] = []
  let limit: number | undefined
  let live = false
  let reverse = false
  for (const [key, value] of params) {
    if (key === 'user') raw.push(value)
    else if (key === 'path' && value !== '') rawPaths.push(value)
    else if (key === 'live') live = value === 'true' || value === '1'
    else if (key === 'reverse') reverse = value === 'true' || value === '1'
    else if (key === 'limit') limit = parseStreamLimit(value)
  }
  if (live && reverse) fail('InvalidQuery', 'Cannot use live mode with reverse ordering')
  const users: StreamUser[] = []
  for (const value of raw) {
    if (value === '') continue
    const colon = value.indexOf(':')
    const user = colon < 0 ? value : value.slice(0, colon)
    if (decodePublicKey(user) === undefined) fail('InvalidPublicKey', `Invalid public key: ${user}`)
    users.push(colon < 0 ? { user } : { user, cursor: value.slice(colon + 1) })
  }
  if (users.length === 0) fail('InvalidQuery', 'user parameter is required')
  if (users.length > MAX_STREAM_USERS) {
    fail('InvalidQuery', `Too many users. Maximum allowed: ${MAX_STREAM_USERS}`)
  }
  const paths = rawPaths.map(parseStreamPath)
  return { users, paths, limit, live, reverse }
}

/** A `path=` value: a `/` is prepended when missing, then it is normalised like storage paths. */
export function parseStreamPath(value: string): StreamPath {
  const given = value.startsWith('/') ? value : `/${value}`
  const { path } = normalForm(given)
  if (path === undefined) fail('InvalidQuery', `Invalid path: ${given}`)
  return { path, prefix: path.endsWith('/') }
}

/** What a session may read: the route builds it from the cookie named after the one user. */
export interface StreamSession {
  user: string
  canRead(path: string): boolean
}

/** The paths the stream may follow, in upstream's order of checks; none given → `/pub/`. */
export function authorizeStreamPaths(query: EventsStreamQuery, session?: StreamSession): StreamPath[] {
  if (query.paths.length === 0) return [DEFAULT_STREAM_PATH]
  for (const { path } of query.paths) {
    if (path.startsWith('/pub/')) continue
    if (!path.startsWith('/priv/')) {
      fail('Forbidden', "Reading from directories other than '/pub/' and '/priv/' is forbidden")
    }
    if (session === undefined) fail('Unauthorized', 'Authentication required to read private storage')
    if (query.users.length !== 1) fail('Forbidden', 'A private read must be scoped to exactly one user')
    if (session.user !== query.users[0]!.user) fail('Forbidden', 'Session user does not match target tenant')
    if (!session.canRead(path)) fail('Forbidden', 'Session does not have read access to path')
  }
  return query.paths
}

/**
 * Each user's starting cursor (exclusive; undefined = from the start, or the newest with
 * reverse), checking existence then cursor user by user, as upstream does. Duplicates: the
 * last cursor wins, at the user's first position.
 */
export async function resolveStreamCursors(
  users: readonly StreamUser[],
  isKnown: (user: string) => boolean | Promise<boolean>,
): Promise<Map<string, bigint | undefined>> {
  const cursors = new Map<string, bigint | undefined>()
  for (const { user, cursor } of users) {
    if (!(await isKnown(user))) fail('NotFound', 'Not Found')
    cursors.set(user, cursor === undefined ? undefined : parseStreamCursor(cursor))
  }
  return cursors
}

export function parseStreamCursor(text: string): bigint {
  const seq = readStreamCursor(text)
  if (seq === undefined) fail('InvalidCursor', `Invalid cursor: ${text}`)
  return seq
}

/** A cursor: a decimal u64 or a 13-character id; undefined when it is neither. */
export function readStreamCursor(text: string): bigint | undefined {
  let seq: bigint | undefined
  if (/^\+?[0-9]+$/.test(text)) seq = BigInt(text.replace('+', ''))
  else if (text.length === ID_LENGTH) seq = seqOfId(text)
  return seq === undefined || seq > MAX_SEQ ? undefined : seq
}

export function streamPathMatches(paths: readonly StreamPath[], path: string): boolean {
  return paths.some((p) => (p.prefix ? path.startsWith(p.path) : path === p.path))
}

/** The same selection as `/subscribe` filters: every user crossed with every path. */
export function streamFilters(users: Iterable<string>, paths: readonly StreamPath[]): Filter[] {
  const filters: Filter[] = []
  for (const user of new Set(users)) {
    for (const { path, prefix } of paths) filters.push({ user, path, prefix, text: filterText(user, path, prefix) })
  }
  return filters
}

/** A `limit=` value: 1 to 65535, upstream's u16. */
export function parseStreamLimit(value: string): number {
  const n = /^\+?[0-9]+$/.test(value) ? Number(value) : NaN
  if (!(n <= MAX_LIMIT)) fail('InvalidQuery', `Invalid limit: ${value}`)
  if (n === 0) fail('InvalidQuery', 'limit must be at least 1')
  return n
}
