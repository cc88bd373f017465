import { decodePublicKey } from '../auth/keys.js'
import { fail } from '../errors.js'
import { MAX_STREAM_USERS, parseStreamLimit, parseStreamPath, readStreamCursor, type StreamPath } from './events-stream-query.js'

/*
 * The admin firehose, `GET /admin/events-stream`: upstream serves it as `GET /events-stream` on
 * its admin server, behind the admin password (github.com/pubky/pubky-homeserver,
 * pubky-homeserver/src/admin_server/routes/admin_events.rs and app.rs). It is the public
 * `/events-stream` (src/subscriptions/events-stream-query.ts) with these differences:
 * - `user=<z32>` is optional (none: every user) and takes no `:<cursor>`; a repeated user
 *   counts once; more than 50 distinct users is "Too many users. Maximum allowed: 50".
 * - one `cursor=` for the whole log (exclusive; decimal or a 13-character id; empty ignored),
 *   checked after the users are found: "Invalid cursor" (400).
 * - no `path=` means every path, `/priv/` included, and no path is refused.
 * Errors are plain text, checked in the order the query gives them (a bad user, limit or path
 * where it appears), then "Cannot use live mode with reverse ordering", then the count of users;
 * then each user in order must be signed up here (404 "Not Found"), then the cursor.
 */
export interface FirehoseQuery {
  /** the users followed, each once; empty: every user */
  users: string[]
  /** as given: it is read after the users are found */
  cursor?: string
  paths: StreamPath[]
  limit?: number
  live: boolean
  reverse: boolean
}

/** What no `path=` means on the firehose: everything, public and private. */
export const ALL_PATHS: StreamPath = Object.freeze({ path: '/', prefix: true })

export function parseFirehoseQuery(query: string | URLSearchParams): FirehoseQuery {
  const params = typeof query === 'string' ? new URLSearchParams(query) : query
  const users = new Set<string>()
  const paths: StreamPath[] = []
  let cursor: string | undefined
  let limit: number | undefined
  let live = false
  let reverse = false
  for (const [key, value] of params) {
    if (key === 'user' && value !== '') {
      if (decodePublicKey(value) === undefined) fail('InvalidPublicKey', `Invalid public key: ${value}`)
      users.add(value)
    } else if (key === 'cursor' && value !== '') cursor = value
    else if (key === 'limit') limit = parseStreamLimit(value)
    else if (key === 'live') live = value === 'true' || value === '1'
    else if (key === 'reverse') reverse = value === 'true' || value === '1'
    else if (key === 'path' && value !== '') paths.push(parseStreamPath(value))
  }
  if (live && reverse) fail('InvalidQuery', 'Cannot use live mode with reverse ordering')
  if (users.size > MAX_STREAM_USERS) fail('InvalidQuery', `Too many users. Maximum allowed: ${MAX_STREAM_USERS}`)
  return { users: [...users], cursor, paths: paths.length === 0 ? [ALL_PATHS] : paths, limit, live, reverse }
}

export function parseFirehoseCursor(text: string): bigint {
  const seq = readStreamCursor(text)
  if (seq === undefined) fail('InvalidCursor', 'Invalid cursor')
  return seq
}
