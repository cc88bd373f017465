import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { fail } from '../errors.js'
import type { RouteDoc } from '../openapi/route-doc.js'

/** The compiled tree (dist/src/): the viewer's files sit where `npm run build` puts them. */
const ROOT = new URL('../', import.meta.url)

const JS = 'text/javascript; charset=utf-8'
/**
 * URL → file. The viewer's modules import the client package's id codec and backoff as they
 * are (they import nothing); the page's import map names them under /client/.
 */
const FILES: Record<string, [file: URL, type: string]> = {
  '/': [new URL('viewer/static/index.html', ROOT), 'text/html; charset=utf-8'],
  '/viewer/viewer.css': [new URL('viewer/static/viewer.css', ROOT), 'text/css; charset=utf-8'],
  '/viewer/viewer.js': [new URL('viewer/viewer.js', ROOT), JS],
  '/viewer/feed.js': [new URL('viewer/feed.js', ROOT), JS],
  '/shared/size.js': [new URL('shared/size.js', ROOT), JS],
  '/client/id.js': [new URL(import.meta.resolve('hearth-homeserver-client/id')), JS],
  '/client/backoff.js': [new URL(import.meta.resolve('hearth-homeserver-client/backoff')), JS],
}

/**
 * The page loads only its own files and talks only to this origin; its one inline script, the
 * import map, is allowed by its hash.
 */
function policy(page: Buffer | undefined): string {
  const map = page?.toString('utf8').match(/<script type="importmap">([^<]*)<\/script>/)?.[1]
  const hash = map === undefined ? '' : ` 'sha256-${createHash('sha256').update(map).digest('base64')}'`
  return `default-src 'none'; script-src 'self'${hash}; style-src 'self'; connect-src 'self'; img-src 'self' data:; ` +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

/** `GET /`: the live viewer of the feed (SPEC §10), a page and a few small modules, no CDN. */
export async function viewerRoutes(app: FastifyInstance): Promise<void> {
  const CSP = policy(read(FILES['/']![0]))
  for (const [url, [file, type]] of Object.entries(FILES)) {
    const body = read(file)
    const doc: RouteDoc = {
      summary: url === '/' ? 'The live viewer of the feed, for a browser' : `A file of the live viewer (${url})`,
      tag: 'server',
      responses: { 200: { description: 'the file', content: { [type.split(';')[0]!]: { text: url === '/' ? 'the viewer page' : 'the file' } } } },
      errors: [404],
    }
    app.get(url, { config: { doc } }, async (_req, reply) => {
      if (body === undefined) fail('NotFound', 'The viewer is not built: run `npm run build`')
      return reply
        .type(type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', CSP)
        .send(body)
    })
  }
}

function read(file: URL): Buffer | undefined {
  try {
    return readFileSync(file)
  } catch {
    return undefined
  }
}
