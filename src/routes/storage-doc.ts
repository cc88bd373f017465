import { z } from 'zod'
import { listQuery } from './list-query.js'
import { userHeaders, userQuery, type RouteDoc } from '../openapi/route-doc.js'

const file = { 'application/octet-stream': { bytes: 'the content; Content-Type sniffed from the bytes, then the extension' } }
const listing = { 'text/plain': { text: 'one `pubky://<key><path>` per line, folders ending in `/` when shallow' } }
const fileHeaders = {
  etag: '`"<base64 blake3>"`',
  'last-modified': 'when it was written',
  'content-length': 'its size in bytes',
}
const conditional = z.object({
  'if-none-match': z.string().optional().describe('an ETag: 304 when it matches'),
  'if-modified-since': z.string().optional().describe('an HTTP date: 304 when not modified since'),
})

/** The file API's documentation, one operation per method and root. */
export function storageDoc(method: 'GET' | 'HEAD' | 'PUT' | 'DELETE', url: '/pub/*' | '/priv/*' | '/storage/*' | '/*'): RouteDoc {
  const where = {
    '/pub/*': 'a public file or folder, under /pub/',
    '/priv/*': "a private file or folder, under /priv/: only its owner's session",
    '/storage/*': 'path-addressed: `<key>/pub/…` or `<key>/priv/…`, the same resources',
    '/*': 'anywhere outside /pub/ and /priv/: writes are refused (403)',
  }[url]
  const params = z.object({ path: z.string().describe(url === '/storage/*' ? '`<key>/<root>/<path>`' : 'the rest of the path') })
  const addressed = url === '/storage/*' ? {} : { query: userQuery, headers: userHeaders }
  const base = { tag: 'storage' as const, description: where, params, ...addressed }
  switch (method) {
    case 'GET':
    case 'HEAD':
      return {
        ...base,
        summary: method === 'GET' ? 'Read a file, or list a folder (a path ending in /)' : "A file's headers",
        query: listQuery.extend(url === '/storage/*' ? {} : userQuery.shape),
        headers: url === '/storage/*' ? conditional : userHeaders.extend(conditional.shape),
        responses: {
          200: { description: 'the file, or the listing', content: { ...file, ...listing }, headers: fileHeaders },
          304: { description: 'not modified' },
        },
        errors: [400, 401, 403, 404],
      }
    case 'PUT':
      return {
        ...base,
        summary: 'Write a file',
        body: { type: '*/*', description: 'the content, at most MAX_BODY bytes' },
        responses: { 201: { description: 'written: the file and its event are on disk', headers: EVENT_HEADERS } },
        errors: [400, 401, 403, 409, 413, 507],
      }
    case 'DELETE':
      return {
        ...base,
        summary: 'Delete a file',
        responses: { 204: { description: 'deleted: the deletion and its event are on disk', headers: EVENT_HEADERS } },
        errors: [400, 401, 403, 404],
      }
  }
}

/** The headers a write answers with: the event it appended. */
export const EVENT_ID_HEADER = 'hearth-event-id'
export const EVENT_SEQ_HEADER = 'hearth-event-seq'
const EVENT_HEADERS = { [EVENT_ID_HEADER]: 'the 13-character id of the event the write appended', [EVENT_SEQ_HEADER]: "that event's seq, in decimal" }
