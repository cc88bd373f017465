import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { json, publicKey, type RouteDoc } from '../openapi/route-doc.js'
import type { Relay } from '../relay/relay.js'
import { UPSTREAM_FAULTS } from '../relay/upstream.js'

const upstreamBody = z.object({
  upstream: z.string().describe('as configured: a homeserver key resolved through pkarr, a URL pinned to a key (<key>@<url>), or a URL its key\'s pkarr record names'),
  url: z.string().nullable().describe('where it was last reached (null before it was resolved)'),
  homeserver: publicKey.nullable().describe("the homeserver's key, once proven (null before; a key its /info only claims is not shown)"),
  cursor: z.string().describe('the last upstream seq in this relay’s log, in decimal'),
  state: z.enum(['connecting', 'catching-up', 'live', 'failed']),
  lag: z.number().int().describe("events between the cursor and the upstream's head, as last seen"),
  resets: z.number().int().describe('times the upstream had pruned events the relay had not read yet, or its head was behind the relay\'s cursor and its log was relayed again from its start (since start)'),
  unasked: z.number().int().describe('events it sent that none of the relay\'s filters asked for, not stored (since start)'),
  faults: z.record(z.enum(UPSTREAM_FAULTS as [string, ...string[]]), z.number().int()).describe('times it was dropped, by reason (since start)'),
  lastError: z.string().nullable(),
})

export const relayInfoBody = z.object({
  role: z.literal('relay'),
  publicKey: publicKey.describe("the relay's own key"),
  version: z.string(),
  events: z.object({
    head: z.string().describe('the newest seq of the relay’s log, in decimal'),
    floor: z.string().describe('the oldest seq kept, in decimal'),
  }),
  upstreams: z.array(upstreamBody),
})

const doc: RouteDoc = {
  summary: 'What this relay follows, and where its log stands',
  tag: 'server',
  responses: { 200: json(relayInfoBody, 'the relay') },
}

/** `GET /info` on a relay: its log, and each upstream's state, cursor and lag. */
export async function relayInfoRoute(app: FastifyInstance, ctx: Context, relay: Relay): Promise<void> {
  app.get('/info', { config: { doc } }, async (): Promise<z.infer<typeof relayInfoBody>> => ({
    role: 'relay',
    publicKey: ctx.keypair.z32,
    version: ctx.version,
    events: { head: String(ctx.events.head), floor: String(ctx.events.floor) },
    upstreams: relay.upstreams.map((u) => ({
      upstream: u.spec,
      url: u.url ?? null,
      homeserver: u.homeserver ?? null,
      cursor: String(u.cursor),
      state: u.state,
      lag: u.lag,
      resets: u.resets,
      unasked: u.unasked,
      faults: Object.fromEntries(u.faults()),
      lastError: u.lastError ?? null,
    })),
  }))
}
