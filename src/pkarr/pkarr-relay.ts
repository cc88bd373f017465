/**
 * A pkarr relay (https://pkarr.org/relays) kept in memory, for testnet: the official client
 * publishes and resolves signed packets through it as it would through a public relay.
 */
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import { z } from 'zod'
import { decodePublicKey } from '../auth/keys.js'
import { MAX_PAYLOAD_BYTES, PacketError, isMoreRecent, parsePayload } from './packet.js'

export const PAYLOAD_CONTENT_TYPE = 'application/pkarr.org/relays#payload'
/** upstream relays clamp Cache-Control max-age to these TTL bounds */
const MIN_TTL = 300
const MAX_TTL = 86400

interface Entry {
  payload: Buffer
  timestamp: bigint
  dns: Uint8Array
  maxAge: number
}

/**
 * Packets by key, dropping the least recently updated past `maxEntries`, never a pinned one
 * (the homeserver's own and its users'): a flood of anonymous packets cannot push out the
 * records the homeserver's clients need. Pinned keys are bounded by the homeserver's users.
 */
export class PacketStore {
  readonly #entries = new Map<string, Entry>()
  readonly #pinned = new Set<string>()
  readonly #maxEntries: number

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries
  }

  get size(): number {
    return this.#entries.size
  }

  get(key: string): Entry | undefined {
    return this.#entries.get(key)
  }

  /** Keeps `key`'s packet from eviction from now on. */
  pin(key: string): void {
    this.#pinned.add(key)
  }

  set(key: string, entry: Entry): void {
    // re-inserting moves the key to the end of the Map's order, which is update order
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size - this.#pinned.size <= this.#maxEntries) break
      if (!this.#pinned.has(oldest)) this.#entries.delete(oldest)
    }
  }
}

export interface PkarrRelayOptions {
  maxEntries?: number
  /** packets one address may PUT per minute */
  putsPerMinute?: number
  /** whether a key's packet is kept from eviction (asked once per accepted PUT) */
  pinned?: (key: string) => Promise<boolean>
  logger?: boolean | object
}

const optionsSchema = z.object({
  maxEntries: z.number().int().positive().default(10_000),
  putsPerMinute: z.number().int().positive().default(600),
})
const ifMatch = z.string().trim().regex(/^\d{1,20}$/).transform(BigInt)

function plain(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('text/plain; charset=utf-8').send(message)
}

function httpDate(timestamp: bigint): string {
  return new Date(Number(timestamp / 1000n)).toUTCString()
}

export function createPkarrRelay(options: PkarrRelayOptions = {}): FastifyInstance & { store: PacketStore } {
  const { maxEntries, putsPerMinute } = optionsSchema.parse({ maxEntries: options.maxEntries, putsPerMinute: options.putsPerMinute })
  const store = new PacketStore(maxEntries)
  // clients join the relay URL and the key with a '/', so '//<key>' must route too
  const app = Fastify({ logger: options.logger ?? false, routerOptions: { ignoreDuplicateSlashes: true } })

  // like upstream's permissive CORS layer: mirror the origin, allow credentials
  app.register(cors, { origin: true, credentials: true, methods: ['GET', 'HEAD', 'PUT', 'OPTIONS'], maxAge: 86400 })

  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_PAYLOAD_BYTES }, (_req, body, done) => done(null, body))

  // PUTs only, per address: reads stay free, and one client cannot churn the store
  app.register(rateLimit, { global: false })
  app.setErrorHandler((error: { statusCode?: number; message: string }, _req, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
    return plain(reply, status, status === 500 ? 'Internal Server Error' : error.message)
  })
  app.setNotFoundHandler((_req, reply) => plain(reply, 404, 'Not Found'))

  app.get('/', (_req, reply) => plain(reply, 200, `Pkarr relay (in memory): ${store.size} packets\n`))

  // Fastify's media type parser refuses this type (it has two slashes), so set it after send()
  const payloadType = (_req: unknown, reply: FastifyReply, payload: unknown, done: (e: null, p: unknown) => void) => {
    if (reply.statusCode === 200) reply.header('content-type', PAYLOAD_CONTENT_TYPE)
    done(null, payload)
  }

  app.get<{ Params: { key: string } }>('/:key', { onSend: payloadType }, (req, reply) => {
    if (!decodePublicKey(req.params.key)) return plain(reply, 400, 'Invalid public key')
    const entry = store.get(req.params.key)
    if (!entry) return plain(reply, 404, 'Not Found')
    const lastModified = httpDate(entry.timestamp)
    reply.header('cache-control', `public, max-age=${entry.maxAge}`).header('last-modified', lastModified)
    const since = Date.parse(req.headers['if-modified-since'] ?? '')
    // HTTP dates have whole seconds, so compare at that precision
    if (!Number.isNaN(since) && since >= Date.parse(lastModified)) return reply.code(304).send()
    // an explicit length: without one, the official client takes the answer for a broken cache and asks again
    return reply.header('content-length', entry.payload.length).send(entry.payload)
  })

  const putLimit = { rateLimit: { max: putsPerMinute, timeWindow: 60_000 } }
  // in a plugin of its own, so the rate limiter (registered above) is loaded when it is added
  app.register(async (scope) => scope.put<{ Params: { key: string }; Body: Buffer | undefined }>('/:key', { config: putLimit }, async (req, reply) => {
    const key = req.params.key
    const publicKey = decodePublicKey(key)
    if (!publicKey) return plain(reply, 400, 'Invalid public key')
    const body = req.body ?? Buffer.alloc(0)
    let packet
    try {
      packet = parsePayload(publicKey, body)
    } catch (e) {
      if (e instanceof PacketError) return plain(reply, 400, e.message)
      throw e
    }
    const held = store.get(key)
    if (held) {
      if (isMoreRecent(held, packet)) return plain(reply, 409, 'Conflict: a more recent packet is already held')
      const cas = req.headers['if-match']
      if (cas !== undefined) {
        const expected = ifMatch.safeParse(cas)
        if (!expected.success || expected.data !== held.timestamp) return plain(reply, 412, 'Precondition Failed')
      }
    }
    const ttls = packet.message.answers.map((rr) => rr.ttl)
    const maxAge = ttls.length ? Math.min(Math.max(Math.min(...ttls), MIN_TTL), MAX_TTL) : MIN_TTL
    store.set(key, { payload: Buffer.from(body), timestamp: packet.timestamp, dns: packet.dns, maxAge })
    if (options.pinned !== undefined && (await options.pinned(key).catch(() => false))) store.pin(key)
    return reply.code(204).send()
  }))

  return Object.assign(app, { store })
}
