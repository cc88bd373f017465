import type { FastifyReply } from 'fastify'

/**
 * Types a browser would run, or render as a document able to run script, if a user opened
 * the file's URL: HTML and XHTML, SVG, XML of any kind (`+xml` included), JavaScript.
 */
const ACTIVE = /^(?:text\/html|text\/xml|text\/xsl|application\/xml|[\w.+-]+\/[\w.+-]+\+xml|(?:text|application)\/(?:x-)?(?:javascript|ecmascript|jscript))$/

/**
 * Files are served as data, never as active content of the homeserver's origin (SPEC §3):
 * CORS lets any origin read them with credentials, so an uploaded page that ran here could act
 * for whoever opened it. `nosniff` stops a browser from guessing a runnable type; a type that
 * is runnable as declared gets a sandbox with nothing allowed.
 */
export function servedAsData(reply: FastifyReply, type?: string): void {
  reply.header('x-content-type-options', 'nosniff')
  const essence = (type ?? '').split(';')[0]!.trim().toLowerCase()
  if (ACTIVE.test(essence)) reply.header('content-security-policy', "sandbox; default-src 'none'")
}
