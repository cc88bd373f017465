import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { fail } from '../errors.js'
import type { RouteDoc } from '../openapi/route-doc.js'

/** The compiled tree (dist/src/): the viewer's files sit where `npm run build` puts them. */
const ROOT = new URL('../', import.meta.url)

const JS = 'text/javascript; charset=utf-8'
/** URL → file under ROOT. The viewer's modules import the shared id codec and backoff as they are. */
const FILES: Record<string, [file: string, type: string]> = {
  '/': ['viewer/static/index.html', 'text/html; charset=utf-8'],
  '/viewer/viewer.css': ['viewer/static/viewer.css', 'text/css; charset=utf-8'],
  '/viewer/viewer.js': ['viewer/viewer.js', JS],
  '/viewer/feed.js': ['viewer/feed.js', JS],
  '/shared/id.js': ['shared/id.js', JS],
  '/shared/backoff.js': ['shared/backoff.js', JS],
  '/shared/size.js': ['shared/size.js', JS],
}

// The page loads only its own files and talks only to this origin.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/** `GET /`: the live viewer of the feed (SPEC §10), a page and a few small modules, no CDN. */
export async function viewerRoutes(app: FastifyInstance): Promise<void> {
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

function read(file: string): Buffer | undefined {
  try {
    return readFileSync(new URL(file, ROOT))
  } catch {
    return undefined
  }
}
