import { decodePublicKey } from '../auth/keys.js'
import { fail } from '../errors.js'
import { MAX_PATH_BYTES, normalProblem } from '../paths.js'

// A `/subscribe` filter: `<user><path>`, where `<user>` is a 52-character z32 key or `*`
// (every user) and a trailing `*` turns the path into a prefix.
//
//   `*`                                 every event (prefix '' for every user)
//   `<z32>`, `<z32>*`, `<z32>/*`        everything of one user
//   `<z32>/pub/pubky.app/posts/*`       one folder of one user (`/pub/pubky.app/po*` works too)
//   `*/pub/pubky.app/posts/*`           that folder of every user
//   `<z32>/pub/pubky.app/profile.json`  exactly one file (also `*/pub/...`: that file of every user)
//
// A path holding a literal `*` or `\` writes it `\*` or `\\`, so every storable path can be
// named exactly and by prefix. Rejected as InvalidFilter: an unescaped `*` anywhere but last,
// a `\` before anything else, a path that breaks the path rules of src/paths.ts (relative,
// not normalised, control characters, too long or too deep), and an exact path ending in `/`
// (that names a folder, never an event: add `*` to follow it).
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
const KEY_LENGTH = 52

export const EVERYTHING: Filter = Object.freeze({ user: ANY_USER, path: '', prefix: true, text: '*' })

export function parseFilter(text: string): Filter {
  // every path character may be escaped, and one `*` may follow
  if (text.length > KEY_LENGTH + 2 * MAX_PATH_BYTES + 1) invalid(text, 'it is too long')
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
  const { path, prefix } = unescape(text, rest)
  const problem = normalProblem(path, prefix)
  if (problem !== undefined) invalid(text, problem)
  if (!prefix && path.endsWith('/')) invalid(text, 'an exact path cannot end in / (add * to follow a folder)')
  return { user, path, prefix, text: filterText(user, path, prefix) }
}

/** The canonical text of a filter, which `parseFilter` reads back to the same filter. */
export function filterText(user: string, path: string, prefix: boolean): string {
  return `${user}${path.replace(/[\\*]/g, '\\$&')}${prefix ? '*' : ''}`
}

/** A filter's path part: `\*` and `\\` stand for themselves; a bare `*` ends a prefix. */
function unescape(text: string, rest: string): { path: string; prefix: boolean } {
  const star = rest.indexOf('*')
  if (!rest.includes('\\')) {
    if (star !== -1 && star !== rest.length - 1) invalid(text, '* may only end a filter (write \\* for a literal *)')
    return star === -1 ? { path: rest, prefix: false } : { path: rest.slice(0, -1), prefix: true }
  }
  let path = ''
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i]!
    if (c === '\\') {
      const next = rest[i + 1]
      if (next !== '*' && next !== '\\') invalid(text, 'a \\ may only come before * or \\')
      path += next
      i++
    } else if (c === '*') {
      if (i !== rest.length - 1) invalid(text, '* may only end a filter (write \\* for a literal *)')
      return { path, prefix: true }
    } else {
      path += c
    }
  }
  return { path, prefix: false }
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

function invalid(text: string, why: string): never {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text
  fail('InvalidFilter', `Invalid filter "${shown}": ${why}`)
}
