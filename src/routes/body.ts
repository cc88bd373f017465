import type { FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import { fail } from '../errors.js'

/** Reads a small request body whole, refusing (413) anything past `max` bytes. */
export async function smallBody(req: FastifyRequest, max: number): Promise<Uint8Array> {
  const body = req.body as Readable | undefined
  if (body === undefined) return new Uint8Array()
  if (Number(req.headers['content-length'] ?? 0) > max) {
    // Refused before a byte is read (the answer closes the connection), so the client gets
    // the 413 rather than a socket reset halfway through its upload.
    fail('PayloadTooLarge', `Body is larger than ${max} bytes`)
  }
  const chunks: Buffer[] = []
  let size = 0
  // a body without a length (chunked) is read up to `max`, then left as it is, not destroyed:
  // the 413 closes the connection once sent. Destroying the request reset the socket before
  // the answer went out, and the client saw no 413.
  for await (const chunk of body.iterator({ destroyOnReturn: false })) {
    size += (chunk as Buffer).length
    if (size > max) fail('PayloadTooLarge', `Body is larger than ${max} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}
