import { fail } from './errors.js'

export const MAX_SEGMENT_BYTES = 255
export const MAX_PATH_BYTES = 4096
const CONTROL = /[\u0000-\u001f\u007f]/

/**
 * Normalises a storage path as it arrived in the URL: percent-decoded once, `.` and `..`
 * resolved, empty segments (`//`) folded, a trailing `/` kept (it names a directory).
 * Anything that would climb above the root, or breaks the size and character rules, is 400.
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

/** The same rules for a path that is already decoded (from a query parameter, say). */
export function normaliseDecoded(decoded: string): string {
  if (!decoded.startsWith('/')) fail('InvalidPath', 'Invalid path: must be absolute')
  if (CONTROL.test(decoded)) fail('InvalidPath', 'Invalid path: control characters')
  const parts = decoded.split('/')
  const out: string[] = []
  for (const seg of parts.slice(1, -1)) push(out, seg)
  const last = parts[parts.length - 1]!
  push(out, last)
  const isDir = last === '' || last === '.' || last === '..'
  const path = '/' + out.join('/') + (isDir && out.length > 0 ? '/' : '')
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) fail('InvalidPath', `Invalid path: longer than ${MAX_PATH_BYTES} bytes`)
  return path
}

function push(out: string[], seg: string): void {
  if (seg === '' || seg === '.') return
  if (seg === '..') {
    if (out.length === 0) fail('InvalidPath', 'Invalid path: climbs above the root')
    out.pop()
    return
  }
  if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) fail('InvalidPath', `Invalid path: a segment is longer than ${MAX_SEGMENT_BYTES} bytes`)
  out.push(seg)
}

/** Only `/pub/` (public) and `/priv/` (private) hold files; everything else is 403. */
export function checkRoot(path: string): void {
  if (!path.startsWith('/pub/') && !path.startsWith('/priv/')) {
    fail('Forbidden', 'Only paths under /pub/ and /priv/ can be stored')
  }
}

export function isDirPath(path: string): boolean {
  return path.endsWith('/')
}

/** `/pub/a/b/c.txt` → [`/pub/a`, `/pub/a/b`]: the paths that must not be files for c.txt to exist. */
export function fileAncestors(path: string): string[] {
  const segs = path.split('/').slice(1, -1)
  const out: string[] = []
  for (let i = 2; i <= segs.length; i++) out.push('/' + segs.slice(0, i).join('/'))
  return out
}
