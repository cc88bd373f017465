import fc from 'fast-check'
import http from 'node:http'
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { HomeserverClient } from 'hearth-homeserver-client'
import { randomKeypair } from '../../src/auth/keys.js'
import { ChunkedDecoder, parseHead, rawConversation, rawRequest, type RawResponse } from './raw-http.js'
import { hostileRequest, TokenMaker, type Actors, type HostileRequest } from './hostile-input.js'
import { readSubscribe } from './sse.js'
import { framesIn } from './sse-frames.js'
import { headOf } from './server.js'
import { seqOfId } from 'hearth-homeserver-client/id'

/**
 * Fires generated hostile requests at a running server and checks each answer against the
 * properties every answer must have: no 5xx, no `/priv/` name of a user whose session the
 * request did not carry, errors in the contract's shape (plain text on storage and auth
 * routes, JSON `{error, message}` elsewhere), no C1 character in a listing or feed, no
 * position of a victim's private event in a stream that follows that victim, no empty
 * `/events/` page while events follow its cursor, and the known answer of checked requests.
 * The server must answer /info after every batch.
 */
export interface HostileWorld {
  actors: Actors
  /** the names of the victims' private files; none may ever appear in an answer */
  markers: string[]
  /** the seqs of the victims' private events */
  hidden: ReadonlySet<number>
  /** the log's head is at least this (read before each batch) */
  head: number
  /** what is wrong with the victims' files now (they must be exactly as written) */
  damage(): Promise<string[]>
}

/** What is read of an answer: enough for every check, not a whole page of the longest paths. */
const MAX_ANSWER = 256 * 1024

/** Private writes of one victim in a row: longer than a page of its own index. */
const STRETCH = 300

export async function hostileWorld(url: string, adminPassword: string): Promise<HostileWorld> {
  const make = async () => {
    const c = new HomeserverClient(url, randomKeypair())
    await c.signup()
    return c
  }
  const [alice, bob, carol, dave, erin] = [await make(), await make(), await make(), await make(), await make()]
  const markers: string[] = []
  const written: [HomeserverClient, string, string][] = []
  for (const victim of [alice, bob]) {
    const marker = `hush-${randomBytes(8).toString('hex')}`
    markers.push(marker)
    written.push(
      [victim, `/priv/${marker}.txt`, 'private'],
      [victim, `/priv/dir/${marker}/deep.txt`, 'private, deeper'],
      [victim, `/priv/a/${marker}`, 'private, under a'],
      [victim, '/pub/a/open.txt', 'public'],
    )
  }
  for (const [victim, path, text] of written) await victim.put(path, text)
  // a stretch of private events: one-user replays of Bob read pages of his index that end on them
  for (let i = 0; i < STRETCH; i += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, j) => bob.put(`/priv/stretch/${i + j}`, 'private')))
  }
  const damage = async () => {
    const out: string[] = []
    for (const [victim, path, text] of written) {
      const got = await victim.get(path).then((b) => Buffer.from(b).toString(), (e: Error) => e.message)
      if (got !== text) out.push(`${path} of ${victim.user.slice(0, 8)} now reads ${JSON.stringify(got)}`)
    }
    const listed = await victim0List(alice)
    if (listed.length !== 4) out.push(`Alice's listing holds ${listed.length} files: ${listed.join(' ')}`)
    return out
  }
  // public writes after the victims' private ones, so the head is never next to them; then a
  // tail of private events only, which /events/ must move past
  await carol.put('/pub/a/b.txt', 'carol public')
  await carol.put('/pub/a/c.txt', 'carol public')
  for (let i = 0; i < 20; i++) await carol.put(`/priv/carol-${i}.txt`, 'carol private')
  const hidden = new Set<number>()
  for (const victim of [alice, bob]) {
    const own = await readSubscribe(`${url}/subscribe?filter=${victim.user}/priv/*&lastSeq=0&live=false`, { cookie: `${victim.user}=${victim.session}` })
    for (const ev of own.events) hidden.add(Number(ev.seq))
  }
  const id = (c: HomeserverClient) => ({ user: c.user, secret: c.session! })
  const actors = { alice: id(alice), bob: id(bob), carol: { ...id(carol), keypair: carol.keypair }, dave: id(dave), erin: id(erin), adminPassword }
  return { actors, markers, hidden, head: await headOf(url), damage }
}

/** Everything Alice stores, /pub/ and /priv/: nothing may have been added or removed. */
async function victim0List(alice: HomeserverClient): Promise<string[]> {
  return [...(await alice.list('/pub/', 'limit=1000')), ...(await alice.list('/priv/', 'limit=1000'))]
}

export interface HostileFigures {
  requests: number
  failures: number
  seconds: number
  requestsPerSecond: number
  status2xx: number
  status3xx: number
  status4xx: number
  status5xx: number
  noAnswer: number
  /** requests sent again after their connection was reset */
  resent: number
}

/**
 * Sends the `corpus` requests (those that failed before), then `requests` generated from
 * `seed`. Returns the failures in words, and the requests that failed with their first problem.
 */
export async function runHostile(url: string, world: HostileWorld, opts: { requests: number; seed: number; corpus?: HostileRequest[]; concurrency?: number; batch?: number }): Promise<{ figures: HostileFigures; failures: string[]; failed: { req: HostileRequest; problem: string }[] }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency ?? 16 })
  const tokens = new TokenMaker(world.actors.carol.keypair)
  const arb = hostileRequest(world.actors)
  const failures: string[] = []
  const failed: { req: HostileRequest; problem: string }[] = []
  const counts = { status2xx: 0, status3xx: 0, status4xx: 0, status5xx: 0, noAnswer: 0, resent: 0 }
  const batch = opts.batch ?? 500
  const t0 = performance.now()
  let sent = 0
  const corpus = opts.corpus ?? []
  try {
    for (let round = corpus.length > 0 ? -1 : 0; sent < corpus.length + opts.requests && failures.length < 20; round++) {
      const requests = round < 0 ? corpus : fc.sample(arb, { numRuns: Math.min(batch, corpus.length + opts.requests - sent), seed: opts.seed + round })
      await pool(requests, opts.concurrency ?? 16, async (req) => {
        const problems = await exchange(url, req, world, tokens, agent, counts)
        for (const p of problems) failures.push(`${p}\n    request: ${describe(req)}`)
        if (problems.length > 0) failed.push({ req, problem: problems[0]! })
      })
      sent += requests.length
      const info = await headOf(url).then((head) => {
        world.head = head
        return 200
      }, (e: Error) => e.message)
      if (info !== 200) {
        failures.push(`after ${sent} requests /info answers ${info}`)
        break
      }
    }
  } finally {
    agent.destroy()
  }
  const seconds = (performance.now() - t0) / 1000
  return {
    figures: { requests: sent, failures: failures.length, seconds: round2(seconds), requestsPerSecond: Math.round(sent / seconds), ...counts },
    failures,
    failed,
  }
}

type Counts = Omit<HostileFigures, 'requests' | 'failures' | 'seconds' | 'requestsPerSecond'>

/** One request, with the write sent beside it and the read of what it stored, when it names them. */
async function exchange(url: string, req: HostileRequest, world: HostileWorld, tokens: TokenMaker, agent: http.Agent, counts: Counts): Promise<string[]> {
  const [problems, beside] = await Promise.all([
    exchangeOne(url, req, world, tokens, agent, counts),
    req.alongside === undefined ? [] : exchange(url, req.alongside, world, tokens, agent, counts).then((ps) => ps.map((p) => `beside it: ${p}`)),
  ])
  if (problems.length === 0 && req.readBack) problems.push(...await readBack(url, req, agent))
  return [...problems, ...beside]
}

/** A GET of what `req` stored, with its headers: it must answer the body `req` sent. */
async function readBack(url: string, req: HostileRequest, agent: http.Agent): Promise<string[]> {
  const res = await rawRequest(url, { path: req.target, headers: Object.fromEntries(req.headers), agent })
  const sent = Buffer.from(req.body as Uint8Array)
  if (res.status !== 200) return [`read back: ${res.status}: ${res.body.toString().slice(0, 200)}`]
  return res.body.equals(sent) ? [] : [`read back ${res.body.length} bytes that are not the ${sent.length} sent`]
}

async function exchangeOne(url: string, req: HostileRequest, world: HostileWorld, tokens: TokenMaker, agent: http.Agent, counts: Counts): Promise<string[]> {
  const body = req.body === undefined ? undefined : req.body instanceof Uint8Array ? req.body : tokens.make(req.body)
  const stream = /^\/(subscribe|events-stream)/.test(req.target)
  let res: RawResponse
  if (req.transport === 'http') {
    const headers: Record<string, string> = {}
    for (const [k, v] of req.headers) headers[k] = k === 'cookie' && headers[k] ? `${headers[k]}; ${v}` : v
    const send = (via: http.Agent | false) =>
      rawRequest(url, { method: req.method, path: req.target, headers, body, agent: via, timeoutMs: stream ? 300 : 10_000, maxBytes: MAX_ANSWER })
    try {
      // The server rightly drops a connection after a malformed request (unknown method,
      // oversized headers); a request that then finds its kept-alive socket gone is resent
      // once on a fresh connection, as HTTP clients do. A second failure is reported.
      res = await send(agent).catch((err: { code?: string }) => {
        if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') throw err
        counts.resent++
        return send(false)
      })
    } catch (err) {
      counts.noAnswer++
      // Fastify answers oversized headers (16 KiB, request line and the client's own headers
      // included) with a body even to HEAD, which the client then cannot parse
      if (req.method === 'HEAD' && (err as { code?: string }).code?.startsWith('HPE_') && requestSize(req) > 15 * 1024) return []
      const e = err as Error & { code?: string; reusedSocket?: boolean }
      return [`no answer: ${e.message} (${e.code}${e.reusedSocket ? ', on a kept-alive socket' : ''})`]
    }
    // an answer is read up to MAX_ANSWER bytes: past that (a page of 1,000 lines of the longest
    // paths is 4 MB) it was coming, and the rest is not needed for the checks
    if (res.truncated && !stream && res.body.length < MAX_ANSWER) return [`no complete answer within 10 s (status ${res.status})`]
  } else {
    // a stream is read for half a second, once it has answered within the same 5 s as the rest
    const { bytes: raw, closedByServer } = await rawConversation(url, socketBytes(req, body), stream ? 500 : 5000, 5000)
    if (raw.length === 0) {
      counts.noAnswer++
      // Node's parser may drop a connection whose first line is not HTTP at all; a server
      // that keeps the connection and says nothing is hung.
      return closedByServer ? [] : ['no answer within 5 s, and the connection still open']
    }
    const parsed = parseRaw(raw)
    if (parsed === undefined) return [`unparseable answer: ${JSON.stringify(raw.subarray(0, 200).toString('latin1'))}`]
    res = parsed
  }
  const s = res.status
  if (s >= 500) counts.status5xx++
  else if (s >= 400) counts.status4xx++
  else if (s >= 300) counts.status3xx++
  else counts.status2xx++
  return check(req, res, world)
}

function check(req: HostileRequest, res: RawResponse, world: HostileWorld): string[] {
  const problems: string[] = []
  const text = `${JSON.stringify(res.headers)}\n${res.body.toString('latin1')}`
  if (res.status >= 500) problems.push(`${res.status}: ${res.body.toString().slice(0, 200)}`)
  if (req.expect !== undefined && !req.expect.includes(res.status)) {
    problems.push(`${res.status} where ${req.expect.join(' or ')} was due: ${res.body.toString().slice(0, 200)}`)
  }
  if (res.status === 200 && req.transport === 'http') problems.push(...checkFeed(req, res, world))
  for (const m of world.markers) if (text.includes(m)) problems.push(`leaked a private name (${res.status}): ${res.body.toString().slice(0, 300)}`)
  if (res.status >= 400 && req.method !== 'HEAD' && !res.truncated) {
    const shape = expectedShape(req, res)
    const type = String(res.headers['content-type'] ?? '')
    const body = res.body.toString()
    if (type.startsWith('text/plain')) {
      if (shape === 'json') problems.push(`${res.status} in plain text where JSON was due: ${body.slice(0, 120)}`)
      if (body.trim() === '') problems.push(`${res.status} with an empty plain-text body`)
    } else if (type.startsWith('application/json')) {
      if (shape === 'plain') problems.push(`${res.status} in JSON where plain text was due: ${body.slice(0, 120)}`)
      let parsed: { error?: unknown; message?: unknown } | undefined
      try {
        parsed = JSON.parse(body) as typeof parsed
      } catch {
        problems.push(`${res.status} with a JSON type but body ${body.slice(0, 120)}`)
      }
      if (parsed && (typeof parsed.error !== 'string' || typeof parsed.message !== 'string')) problems.push(`${res.status} JSON without error and message: ${body.slice(0, 120)}`)
    } else {
      problems.push(`${res.status} with content-type ${type || 'none'}: ${body.slice(0, 120)}`)
    }
  }
  return problems
}

/**
 * Listings and feeds: no C1 character (nothing holding one can be stored); `/events/` moves
 * its cursor whenever events follow it; a stream that follows one victim reports no position
 * on, or just after, that victim's private events.
 */
function checkFeed(req: HostileRequest, res: RawResponse, world: HostileWorld): string[] {
  const url = new URL(req.target, 'http://x')
  const feed = /^\/(events\/|events-stream|subscribe)/.test(url.pathname)
  const listing = /^\/(pub|priv|storage)\/.*\/$/.test(url.pathname)
  if (req.method !== 'GET' || !(feed || listing)) return []
  const body = res.body.toString('utf8')
  const problems: string[] = []
  if (/[\u0080-\u009f]/.test(body)) problems.push(`a C1 character in ${body.slice(0, 200)}`)
  if (url.pathname === '/events/' && body === '' && !res.truncated) {
    const cursor = url.searchParams.get('cursor') ?? ''
    const limit = url.searchParams.get('limit')
    if (/^\d{0,19}$/.test(cursor) && Number(cursor || 0) < world.head && (limit === null || Number(limit) > 0)) problems.push(`an empty /events/ page at cursor ${cursor || 0}, below the head ${world.head}`)
  }
  if (url.pathname.startsWith('/subscribe')) {
    const filters = url.searchParams.getAll('filter')
    const inPath = url.pathname.slice('/subscribe/'.length)
    if (inPath !== '') filters.push(decodeURIComponentOr(inPath))
    const victims = [world.actors.alice.user, world.actors.bob.user]
    const followed = filters.length > 0 && victims.find((v) => filters.every((f) => f.startsWith(v)))
    if (followed) {
      for (const frame of framesIn(body)) {
        if (frame.data !== undefined || frame.event !== undefined) continue
        const seq = frame.id === undefined ? undefined : Number(seqOfId(frame.id))
        if (seq !== undefined && (world.hidden.has(seq) || world.hidden.has(seq - 1))) {
          problems.push(`an id frame at ${seq}, on or just after a private event of the user the stream follows`)
        }
      }
    }
  }
  return problems
}

function decodeURIComponentOr(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** Which error shape the contract gives this request: plain on storage and auth routes. */
function expectedShape(req: HostileRequest, res: RawResponse): 'plain' | 'json' | 'either' {
  // refused by the HTTP layer before any route: Node and Fastify answer these themselves
  if (req.transport === 'socket' || res.status === 431 || isClientError(res)) return 'either'
  const raw = req.target.split('?')[0]!
  let path = raw
  try {
    path = decodeURI(raw)
  } catch {
    // a path that does not decode is answered by the route its raw text names
  }
  if (!path.startsWith('/')) return 'either'
  const m = req.method
  if (m === 'PUT' || m === 'DELETE') return 'plain'
  if (m === 'POST') return path === '/signup' || path === '/session' ? 'plain' : 'json'
  if (m !== 'GET' && m !== 'HEAD') return 'either'
  if (/^\/(pub|priv|storage)\//.test(path) || path === '/session' || path === '/events-stream' || path === '/admin/generate_signup_token') return 'plain'
  return 'json'
}

function requestSize(req: HostileRequest): number {
  return req.target.length + req.headers.reduce((n, [k, v]) => n + k.length + v.length + 4, 0)
}

/** The answer to a request Node could not parse (e.g. an unknown method), which reaches no route. */
function isClientError(res: RawResponse): boolean {
  return res.status === 400 && res.body.toString() === '{"error":"BadRequest","message":"Malformed HTTP request"}'
}

function socketBytes(req: HostileRequest, body: Uint8Array | undefined): Buffer {
  const lines = [`${req.method} ${req.target} HTTP/1.1`]
  if (!req.headers.some(([k]) => k.toLowerCase() === 'host')) lines.push('Host: 127.0.0.1')
  for (const [k, v] of req.headers) lines.push(`${k}: ${v}`)
  lines.push('Connection: close', `Content-Length: ${body?.length ?? 0}`, '', '')
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'utf8'), body ?? Buffer.alloc(0)])
}

/** Status, headers and (de-chunked) body of a raw HTTP/1.1 answer. */
function parseRaw(raw: Buffer): RawResponse | undefined {
  const end = raw.indexOf('\r\n\r\n')
  const head = parseHead((end === -1 ? raw : raw.subarray(0, end)).toString('latin1'))
  if (head === undefined) return undefined
  let body = end === -1 ? Buffer.alloc(0) : raw.subarray(end + 4)
  let truncated = end === -1
  if (head.headers['transfer-encoding'] === 'chunked') {
    const chunked = new ChunkedDecoder()
    body = Buffer.concat(chunked.push(body))
    truncated ||= !chunked.done && !chunked.malformed
  }
  return { ...head, body, truncated }
}

async function pool<T>(items: readonly T[], size: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: size }, async () => {
    while (next < items.length) await work(items[next++]!)
  }))
}

function describe(req: HostileRequest): string {
  if (req.expect !== undefined) return `checked ${req.method} ${JSON.stringify(req.target.slice(0, 200))} headers=${JSON.stringify(req.headers).slice(0, 400)}`
  const body = req.body === undefined ? '' : req.body instanceof Uint8Array ? ` body=${req.body.length}B` : ` token=${JSON.stringify(req.body)}`
  const target = req.target.length > 300 ? `${req.target.slice(0, 300)}…(${req.target.length})` : req.target
  return `${req.transport} ${req.method} ${JSON.stringify(target)} headers=${JSON.stringify(req.headers).slice(0, 400)}${body}`
}

const round2 = (n: number) => Math.round(n * 100) / 100
