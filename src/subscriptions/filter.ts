import { decodePublicKey } from '../auth/keys.js'
import { fail } from '../errors.js'

// A `/subscribe` filter: `<user><path>`, where `<user>` is a 52-character z32 key or `*`
// (every user) and a trailing `*` turns the path into a prefix.
//
//   `*`                                 every event (prefix '' for every user)
//   `<z32>`, `<z32>*`, `<z32>/*`        everything of one user
//   `<z32>/pub/pubky.app/posts/*`       one folder of one user (`/pub/pubky.app/po*` works too)
//   `*/pub/pubky.app/posts/*`           that folder of every user
//   `<z32>/pub/pubky.app/profile.json`  exactly one file (also `*/pub/...`: that file of every user)
//
// Rejected as InvalidFilter: a `*` anywhere but last, a path not starting with `/`, a `.`,
// `..` or empty segment (stored paths are normalised, so such a filter could never match),
// control characters, a segment over 255 bytes, a path over 4096 bytes, and an exact path
// ending in `/` (that names a folder, never an event: add `*` to follow it). Paths holding
// a literal `*` can only be followed through a prefix filter on their folder.
// Private paths are not refused here; the caller decides who may see `/priv/` events.
export interface Filter {
  user: string
  /** exact path, or the prefix (without the `*`) when `prefix` is true */
  path: string
  prefix: boolean
  /** canonical text: `<user><path>` plus `*` for a prefix */
  text: string
}

export const ANY_USER = '*'
export const MAX_FILTERS = 64
const MAX_PATH_BYTES = 4096
const MAX_SEGMENT_BYTES = 255
const KEY_LENGTH = 52
// Rust's char::is_control, which upstream uses for paths: C0, DEL and C1
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

export const EVERYTHING: Filter = Object.freeze({ user: ANY_USER, path: '', prefix: true, text: '*' })

export function parseFilter(text: string): Filter {
  if (text.length > KEY_LENGTH + MAX_PATH_BYTES + 1) invalid(text, 'it is too long')
  let user: string
  let rest: string
  if (text.startsWith(ANY_USER)) {
    user = ANY_USER
    rest = text.slice(1)
    if (rest === '') return EVERYTHING
  } else {
    user = text.slice(0, KEY_LENGTH)
    if (decodePublicKey(user) === undefined) invalid(text, 'it must start with a z32 public key or *')
    rest = text.slice(KEY_LENGTH)
    // a bare key follows everything of that user
    if (rest === '' || rest === '*') return { user, path: '', prefix: true, text: `${user}*` }
  }
  const prefix = rest.endsWith('*')
  const path = prefix ? rest.slice(0, -1) : rest
  if (path.includes('*')) invalid(text, '* may only end a filter')
  checkPath(text, path, prefix)
  return { user, path, prefix, text: `${user}${path}${prefix ? '*' : ''}` }
}

/** The filters of one stream: none means everything; duplicates collapse; at most 64. */
export function parseFilters(texts: readonly string[]): Filter[] {
  if (texts.length > MAX_FILTERS) {
    fail('TooManyFilters', `At most ${MAX_FILTERS} filters per stream, got ${texts.length}`)
  }
  if (texts.length === 0) return [EVERYTHING]
  const byText = new Map<string, Filter>()
  for (const text of texts) {
    const filter = parseFilter(text)
    byText.set(filter.text, filter)
  }
  return [...byText.values()]
}

/** The reference semantics the tables must agree with. */
export function filterMatches(filter: Filter, ev: { user: string; path: string }): boolean {
  if (filter.user !== ANY_USER && filter.user !== ev.user) return false
  return filter.prefix ? ev.path.startsWith(filter.path) : ev.path === filter.path
}

function checkPath(text: string, path: string, prefix: boolean): void {
  if (!path.startsWith('/')) invalid(text, 'the path must start with /')
  if (CONTROL.test(path)) invalid(text, 'control characters are not allowed')
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) invalid(text, `the path is over ${MAX_PATH_BYTES} bytes`)
  if (!prefix && path.endsWith('/')) invalid(text, 'an exact path cannot end in / (add * to follow a folder)')
  const segments = path.split('/').slice(1)
  // a prefix's last segment may be partial (`/pub/po*`), and empty right after a `/`
  const whole = prefix ? segments.slice(0, -1) : segments
  for (const segment of whole) {
    if (segment === '' || segment === '.' || segment === '..') {
      invalid(text, 'the path must be normalised (no empty, . or .. segments)')
    }
  }
  for (const segment of segments) {
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) invalid(text, `a segment is over ${MAX_SEGMENT_BYTES} bytes`)
  }
}

function invalid(text: string, why: string): never {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text
  fail('InvalidFilter', `Invalid filter "${shown}": ${why}`)
}
