import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { json, publicKey, type RouteDoc } from '../openapi/route-doc.js'
import type { Relay } from '../relay/relay.js'
import { UPSTREAM_FAULTS } from '../relay/upstream-fetch.js'
import { UNRESOLVED_REASONS } from '../relay/user-record.js'
import { DROP_REASONS } from '../relay/interest-stream.js'
import type { Following } from '../relay/following.js'

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

const streamBody = z.object({
  filters: z.array(z.string()).describe('what this stream asks the homeserver for'),
  cursor: z.string().describe('the lowest of its filters\' cursors on the homeserver, in decimal'),
  state: z.enum(['connecting', 'catching-up', 'live', 'failed']),
  lag: z.number().int(),
  faults: z.record(z.enum(UPSTREAM_FAULTS as [string, ...string[]]), z.number().int()).describe('times it was dropped, by reason (since it opened)'),
  lastError: z.string().nullable(),
})

const followingBody = z.object({
  users: z.number().int().describe('users followed now: held by a subscriber, lingering, or standing (--follow)'),
  unresolved: z.number().int().describe('of them, users whose homeserver is not known yet (retried with backoff)'),
  moves: z.number().int().describe('users seen moving to another homeserver (since start)'),
  resolutionFailures: z.record(z.enum(UNRESOLVED_REASONS as [string, ...string[]]), z.number().int()).describe('record reads that failed, by reason (since start)'),
  dropped: z.record(z.enum(DROP_REASONS as [string, ...string[]]), z.number().int())
    .describe('events a followed homeserver sent and the relay did not store: unasked (no filter of the stream matches), elsewhere (the user\'s record names another homeserver)'),
  skipped: z.number().int().describe('filters wanted now that no stream carries (RELAY_STREAMS_PER_HOMESERVER)'),
  leaving: z.array(z.object({
    homeserver: publicKey.describe('the homeserver the user left'),
    upTo: z.string().nullable().describe('its seq when the move was seen, in decimal: its events past it are dropped as elsewhere (null until its /info answers)'),
  })).describe('users who moved, still read on the homeserver they left up to where its log stood then: one entry a user, unnamed'),
  homeservers: z.array(z.object({
    homeserver: publicKey,
    url: z.string(),
    streams: z.array(streamBody),
  })).describe('the homeservers followed users are on, and the upstream streams to each'),
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
  following: followingBody,
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
    following: following(relay.following),
  }))
}

function following(f: Following): z.infer<typeof followingBody> {
  return {
    users: f.interests.userCount,
    unresolved: f.directory.unresolvedCount,
    moves: f.directory.moves,
    resolutionFailures: Object.fromEntries(f.directory.failures),
    dropped: Object.fromEntries(f.dropped),
    skipped: f.skipped,
    leaving: [...f.leaving()].map((l) => ({ homeserver: l.homeserver, upTo: l.upTo === undefined ? null : String(l.upTo) })),
    homeservers: [...f.homeservers().values()].map((h) => ({
      homeserver: h.homeserver,
      url: h.url,
      streams: h.streams.map((s) => ({
        filters: s.filters.map((x) => x.text),
        cursor: String(s.cursor),
        state: s.state,
        lag: s.lag,
        faults: Object.fromEntries(s.faults()),
        lastError: s.lastError ?? null,
      })),
    })),
  }
}
