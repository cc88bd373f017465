import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Readable } from 'node:stream'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { checkRoot, isDirPath, isPrivatePath, normaliseDecoded, normalisePath } from '../paths.js'
import { receiveBody } from '../kv/body-intake.js'
import { send } from './errors.js'
import { requireAccess } from '../auth/request.js'
import { checked, rawPath, requestUser } from './user.js'
import { bool, listQuery } from './list-query.js'
import { noteUser } from './observe.js'
import { EVENT_ID_HEADER, EVENT_SEQ_HEADER, storageDoc } from './storage-doc.js'
import { idOf } from 'hearth-homeserver-client/id'
import { servedAsData } from './served-as-data.js'

/**
 * The file API, on `/pub/…` and `/priv/…` (user from pubky-host, Host or ?pubky-host=) and
 * path-addressed on `/storage/<z32>/…`. Errors here are plain text, as upstream.
 */
export async function storageRoutes(app: FastifyInstance, ctx: Context): Promise<void> {
  const handler = (req: FastifyRequest, reply: FastifyReply) => handle(ctx, req, reply)
  for (const url of ['/pub/*', '/priv/*', '/storage/*'] as const) {
    // HEAD is declared, not derived from GET: Fastify's derived HEAD rewrites an empty reply's
    // Content-Length to 0, and clients read a file's size from it (the official client's stats).
    for (const method of ['GET', 'HEAD', 'PUT', 'DELETE'] as const) {
      app.route({ method, url, exposeHeadRoute: false, config: { plainErrors: true, doc: storageDoc(method, url) }, handler })
    }
  }
  // Writes anywhere else are refused as outside the writable roots, not as unknown routes.
  for (const method of ['PUT', 'DELETE'] as const) {
    app.route({ method, url: '/*', config: { plainErrors: true, doc: storageDoc(method, '/*') }, handler })
  }
}

function target(req: FastifyRequest): { user: string; path: string } {
  const raw = rawPath(req.url)
  if (raw.startsWith('/storage/')) {
    const rest = raw.slice('/storage/'.length)
    const slash = rest.indexOf('/')
    if (slash === -1) fail('InvalidPath', 'Invalid path: expected /storage/<public key>/<path>')
    const user = checked(rest.slice(0, slash))
    noteUser(req, user)
    return { user, path: normalisePath(rest.slice(slash)) }
  }
  return { user: requestUser(req), path: normalisePath(raw) }
}

async function handle(ctx: Context, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { user, path } = target(req)
  checkRoot(path)
  if (req.method === 'PUT') return put(ctx, req, reply, user, path)
  if (req.method === 'DELETE') return del(ctx, req, reply, user, path)
  if (isPrivatePath(path)) await requireAccess(ctx, req, user, path, 'r')
  return isDirPath(path) ? list(ctx, req, reply, user, path) : get(ctx, req, reply, user, path)
}

async function put(ctx: Context, req: FastifyRequest, reply: FastifyReply, user: string, path: string): Promise<void> {
  if (isDirPath(path)) fail('InvalidPath', 'Invalid path: a file path cannot end with /')
  await requireAccess(ctx, req, user, path, 'w')
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > ctx.config.maxBody) {
    // Refuse before reading a byte; the connection closes so the rest is never received.
    reply.header('connection', 'close')
    fail('PayloadTooLarge', `Body is larger than ${ctx.config.maxBody} bytes`)
  }
  const body = (req.body as Readable | undefined) ?? emptyBody()
  const content = await receiveBody(body, path, ctx.store.blobs, {
    maxBody: ctx.config.maxBody,
    inlineMax: ctx.config.inlineMax,
    idleMs: ctx.config.bodyIdleMs,
    // answered now; once the answer is out the connection goes, which ends the body and this upload
    onIdle: () => {
      reply.raw.once('finish', () => req.raw.destroy())
      send(req, reply.header('connection', 'close'), 408, 'RequestTimeout', `No body bytes for ${ctx.config.bodyIdleMs} ms`)
    },
    // a body streamed to a blob holds megabytes: so many per user, so many in all
    streamSlot: () => {
      // refused mid-body: the rest of it must not be read as the next request
      reply.header('connection', 'close')
      const release = ctx.uploads.acquire(user)
      reply.removeHeader('connection')
      return release
    },
  })
  const ev = await ctx.writer.submit({ type: 'PUT', user, path, content })
  return eventHeaders(reply, ev.seq).code(201).send()
}

/** The event a write appended (SPEC §5), so a client can wait for it in a feed or a consumer. */
function eventHeaders(reply: FastifyReply, seq: number): FastifyReply {
  return reply.header(EVENT_ID_HEADER, idOf(seq)).header(EVENT_SEQ_HEADER, String(seq))
}

async function del(ctx: Context, req: FastifyRequest, reply: FastifyReply, user: string, path: string): Promise<void> {
  if (isDirPath(path)) fail('InvalidPath', 'Invalid path: only files can be deleted')
  await requireAccess(ctx, req, user, path, 'w')
  const ev = await ctx.writer.submit({ type: 'DEL', user, path })
  return eventHeaders(reply, ev.seq).code(204).send()
}

async function get(ctx: Context, req: FastifyRequest, reply: FastifyReply, user: string, path: string, attempt = 0): Promise<void> {
  const meta = await ctx.files.meta(user, path)
  if (meta === undefined) fail('NotFound', 'Not found')
  const etag = `"${meta.hash}"`
  const modified = new Date(meta.mtime)
  servedAsData(reply, meta.type)
  reply.header('etag', etag).header('last-modified', modified.toUTCString()).header('cache-control', 'no-cache')
  if (notModified(req, etag, meta.mtime)) return reply.code(304).send()
  reply.header('content-type', meta.type).header('content-length', meta.size)
  if (req.method === 'HEAD') return reply.send()
  const content = await ctx.files.content(user, path, meta)
  if (content !== undefined) return reply.send(content)
  // Overwritten or deleted since its metadata was read: answer for the current version.
  if (attempt < 3) return get(ctx, req, reply, user, path, attempt + 1)
  fail('Unavailable', 'The file is changing too fast to read, try again')
}

/** If-None-Match wins over If-Modified-Since, as RFC 9110 says. */
function notModified(req: FastifyRequest, etag: string, mtime: number): boolean {
  const inm = req.headers['if-none-match']
  if (inm !== undefined) return inm.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}` || t.trim() === '*')
  const ims = Date.parse(req.headers['if-modified-since'] ?? '')
  return !Number.isNaN(ims) && Math.floor(mtime / 1000) * 1000 <= ims
}

async function list(ctx: Context, req: FastifyRequest, reply: FastifyReply, user: string, dir: string): Promise<void> {
  const q = listQuery.parse(req.query)
  const cursor = q.cursor === undefined ? undefined : cursorPath(q.cursor, user, dir)
  const paths = await ctx.files.list(user, dir, { limit: q.limit, cursor, reverse: bool(q.reverse), shallow: bool(q.shallow) })
  servedAsData(reply)
  reply.type('text/plain; charset=utf-8')
  return reply.send(paths.map((p) => `pubky://${user}${p}`).join('\n'))
}

/**
 * A listing cursor: `pubky://<z32>/path`, `<z32>/path` or `/path` name an entry absolutely;
 * anything else is, as upstream, a name relative to the listed directory (`b.txt`, `sub/`),
 * which is what the official client passes through from `list(dir, cursor)`.
 */
function cursorPath(cursor: string, user: string, dir: string): string {
  if (cursor.startsWith('pubky://')) {
    const rest = cursor.slice('pubky://'.length)
    if (!rest.startsWith(user + '/')) fail('InvalidQuery', 'Invalid cursor: it names another user')
    return normaliseDecoded(rest.slice(user.length))
  }
  if (cursor.startsWith('/')) return normaliseDecoded(cursor)
  if (cursor.startsWith(user + '/')) return normaliseDecoded(cursor.slice(user.length))
  return normaliseDecoded(dir + cursor)
}

function emptyBody(): Readable {
  return Readable.from([])
}
