import { fail } from './errors.js'

/*
 * The one set of path rules (SPEC §2). Storage, `/subscribe` filters and `/events-stream`
 * paths all go through this module, so whatever can be stored can be named by a filter.
 *
 * A normal path is absolute, has no empty, `.` or `..` segment, and ends in `/` only when it
 * names a folder. Its segments are at most 255 bytes, it has at most 64 of them and at most
 * 4096 bytes in all, and it holds no control character: C0, DEL or C1 (U+0080–U+009F), the
 * characters Rust's `char::is_control` names, which upstream refuses.
 */
export const MAX_SEGMENT_BYTES = 255
export const MAX_PATH_BYTES = 4096
export const MAX_SEGMENTS = 64
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

/** A path in normal form, or what is wrong with it in the words of a 400. */
export type NormalForm = { path: string; problem?: never } | { path?: never; problem: string }

/**
 * Normalises a storage path as it arrived in the URL: percent-decoded once, then
 * `normaliseDecoded`. Anything that breaks the rules is 400 InvalidPath.
 */
export function normalisePath(raw: string): string {
  let decoded: string
  try {
    decoded = decodeURIComponent(raw)
  } catch {
    fail('InvalidPath', 'Invalid path: bad percent-encoding')
  }
  return normaliseDecoded(decoded)
}

/** `normalForm`, failing with 400 InvalidPath. */
export function normaliseDecoded(decoded: string): string {
  const form = normalForm(decoded)
  if (form.problem !== undefined) fail('InvalidPath', `Invalid path: ${form.problem}`)
  return form.path
}

/**
 * The normal form of a decoded path: `.` and `..` resolved, empty segments (`//`) folded, a
 * trailing `/`, `.` or `..` kept as the folder slash. Climbing above the root, or breaking
 * a rule once normalised, gives the problem instead.
 */
export function normalForm(decoded: string): NormalForm {
  if (!decoded.startsWith('/')) return { problem: 'must be absolute' }
  // checked before anything else reads the text: a control character is refused wherever it is
  if (CONTROL.test(decoded)) return { problem: 'control characters' }
  const parts = decoded.split('/')
  const out: string[] = []
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!
    if (seg === '' || seg === '.') continue
    if (seg === '..') {
      if (out.pop() === undefined) return { problem: 'climbs above the root' }
      continue
    }
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) return { problem: `a segment is longer than ${MAX_SEGMENT_BYTES} bytes` }
    out.push(seg)
  }
  const last = parts[parts.length - 1]!
  const folder = last === '' || last === '.' || last === '..'
  const path = '/' + out.join('/') + (folder && out.length > 0 ? '/' : '')
  return sizeProblem(path, out.length) ?? { path }
}

/**
 * Why a path already in normal form (a filter's, say) breaks a rule. With `partial`, the text
 * after its last `/` is the beginning of a segment (a prefix filter's `/pub/po`), which may be
 * anything a segment may begin with, `.` and `..` included.
 */
export function normalProblem(path: string, partial = false): string | undefined {
  if (!path.startsWith('/')) return 'the path must start with /'
  if (CONTROL.test(path)) return 'control characters are not allowed'
  const segments = path.split('/').slice(1)
  const tail = partial ? segments.pop()! : undefined
  // a folder's trailing `/` leaves one empty segment at the end
  if (!partial && segments.length > 1 && segments[segments.length - 1] === '') segments.pop()
  for (const seg of segments) {
    if (seg === '' || seg === '.' || seg === '..') return 'the path must be normalised (no empty, . or .. segments)'
  }
  for (const seg of tail === undefined ? segments : [...segments, tail]) {
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) return `a segment is over ${MAX_SEGMENT_BYTES} bytes`
  }
  const count = segments.length + (tail !== undefined && tail !== '' ? 1 : 0)
  return sizeProblem(path, count)?.problem
}

function sizeProblem(path: string, segments: number): { problem: string } | undefined {
  if (segments > MAX_SEGMENTS) return { problem: `more than ${MAX_SEGMENTS} segments` }
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return { problem: `longer than ${MAX_PATH_BYTES} bytes` }
  return undefined
}

/** Only `/pub/` (public) and `/priv/` (private) hold files; everything else is 403. */
export function checkRoot(path: string): void {
  if (!path.startsWith(PUBLIC_ROOT) && !path.startsWith(PRIVATE_ROOT)) {
    fail('Forbidden', 'Only paths under /pub/ and /priv/ can be stored')
  }
}

/** Why `path` cannot be the path of a stored file (as another homeserver's event names it), if it cannot. */
export function storedPathProblem(path: string): string | undefined {
  if (isDirPath(path)) return 'a folder, not a file'
  if (!path.startsWith(PUBLIC_ROOT) && !path.startsWith(PRIVATE_ROOT)) return 'outside /pub/ and /priv/'
  // a path that came as UTF-8 holds no lone surrogate; one that did could not be written back
  if (!path.isWellFormed()) return 'a lone surrogate, which no UTF-8 path holds'
  return normalProblem(path)
}

/** The two writable roots (SPEC §2). */
export const PUBLIC_ROOT = '/pub/'
export const PRIVATE_ROOT = '/priv/'

/** `/priv/` files are their owner's alone: to read (storage) and to follow (src/feed/visibility.ts). */
export function isPrivatePath(path: string): boolean {
  return path.startsWith(PRIVATE_ROOT)
}

export function isDirPath(path: string): boolean {
  return path.endsWith('/')
}

/** `/pub/a/b/c.txt` → [`/pub/a`, `/pub/a/b`]: the paths that must not be files for c.txt to exist. */
export function fileAncestors(path: string): string[] {
  const out: string[] = []
  // prefixes of `path` up to each '/' after the root's: slices share the path's memory
  const root = path.indexOf('/', 1)
  for (let at = path.indexOf('/', root + 1); at !== -1; at = path.indexOf('/', at + 1)) out.push(path.slice(0, at))
  return out
}
