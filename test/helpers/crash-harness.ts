import { randomBytes } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { blake3 } from '@noble/hashes/blake3.js'
import { randomKeypair } from '../../src/auth/keys.js'
import { idOf } from 'hearth-homeserver-client/id'
import { HomeserverClient } from 'hearth-homeserver-client'
import { ChildServer } from './child-server.js'
import { openSse, readSubscribe, type SseConnection, type StreamEvent } from './sse.js'
import { disorder, firstDifference, percentile, replay } from './event-checks.js'
import { ABSENT, WriteHistory, sameState, type State } from './write-history.js'

export interface CrashOptions {
  dataDir: string
  /** extra settings for `hearth serve`, e.g. the test engine's DATABASE_URL */
  env?: Record<string, string>
  rounds: number
  users?: number
  /** files per user under /pub/crash/ and under /priv/crash/ */
  pubPaths?: number
  privPaths?: number
  /** concurrent writer loops */
  writers?: number
  /** the kill comes at a random moment in this window after the writers start (ms) */
  killAfterMs?: [number, number]
  /** largest body; sizes are drawn so both inline (≤ 64 KiB) and blob files are common */
  maxBody?: number
  /** called once per round with a one-line summary */
  progress?: (line: string) => void
}

export interface CrashFigures {
  rounds: number
  ackedPuts: number
  ackedDeletes: number
  blobPuts: number
  unanswered: number
  /** unanswered writes whose content was found after the restart */
  unansweredLanded: number
  events: number
  /** the slowest orderly exit after SIGTERM */
  termExitMsMax: number
  restartMsP50: number
  restartMsMax: number
  verifyMsP50: number
  violations: number
}

const INLINE_MAX = 64 * 1024

/**
 * Rounds of: concurrent writers (PUTs of random sizes, DELETEs) and live followers against
 * `hearth serve` in a child process, SIGKILL at a random moment (some rounds: SIGTERM, or
 * SIGTERM cut short by SIGKILL; some restarts killed while starting), restart on the same
 * data folder, then check every promise a crash must keep. Violations are collected, not thrown,
 * so a long run reports all of them; `violations` lists them in words.
 */
export async function runCrashRounds(opts: CrashOptions): Promise<{ figures: CrashFigures; violations: string[] }> {
  const run = new CrashRun(opts)
  try {
    return await run.run()
  } finally {
    await run.server?.kill()
  }
}

interface User {
  client: HomeserverClient
  paths: string[]
}

/** A follower that stays connected through rounds and resumes from its last id after each crash. */
interface Follower {
  name: string
  filter: string
  headers: Record<string, string>
  /** what it should see of the full log */
  wants: (ev: StreamEvent) => boolean
  seen: StreamEvent[]
  lastId?: string
  conn?: SseConnection
}

class CrashRun {
  server: ChildServer | undefined
  readonly #o: Required<Omit<CrashOptions, 'progress' | 'env'>> & Pick<CrashOptions, 'progress' | 'env'>
  readonly #users: User[] = []
  readonly #history = new Map<string, WriteHistory>()
  readonly #followers: Follower[] = []
  readonly #violations: string[] = []
  readonly #restartMs: number[] = []
  readonly #verifyMs: number[] = []
  /** DEL events per path found by the previous verification */
  readonly #deletesLogged = new Map<string, number>()
  readonly #f = { ackedPuts: 0, ackedDeletes: 0, blobPuts: 0, unanswered: 0, unansweredLanded: 0, events: 0, termExitMsMax: 0 }
  #round = 0

  constructor(o: CrashOptions) {
    this.#o = {
      users: 3, pubPaths: 4, privPaths: 2, writers: 8, killAfterMs: [150, 1200], maxBody: 1024 * 1024, ...o,
    }
  }

  async run(): Promise<{ figures: CrashFigures; violations: string[] }> {
    this.server = await ChildServer.start({ dataDir: this.#o.dataDir, env: this.#o.env })
    await this.#createUsers()
    for (this.#round = 1; this.#round <= this.#o.rounds; this.#round++) {
      const ackedBefore = this.#f.ackedPuts + this.#f.ackedDeletes
      await this.#crashRound()
      // now and then the next start is itself cut short, while it opens the database or
      // sweeps unreferenced blobs: a start must survive being interrupted too
      if (this.#round % 4 === 0) await this.server.killDuringStart(Math.random() * 600)
      const t0 = performance.now()
      await this.server.restart()
      this.#restartMs.push(performance.now() - t0)
      const t1 = performance.now()
      await this.#verify()
      this.#verifyMs.push(performance.now() - t1)
      this.#o.progress?.(`round ${this.#round}: ${this.#f.ackedPuts + this.#f.ackedDeletes - ackedBefore} acked, ${this.#f.events} events, ${this.#violations.length} violations`)
      if (this.#violations.length > 50) break
    }
    for (const f of this.#followers) f.conn?.close()
    return {
      figures: {
        rounds: this.#round - 1, ...this.#f,
        restartMsP50: percentile(this.#restartMs, 0.5), restartMsMax: Math.max(...this.#restartMs),
        verifyMsP50: percentile(this.#verifyMs, 0.5), violations: this.#violations.length,
      },
      violations: this.#violations,
    }
  }

  async #createUsers(): Promise<void> {
    for (let i = 0; i < this.#o.users; i++) {
      const client = new HomeserverClient(this.server!.url, randomKeypair())
      await client.signup()
      const paths = [
        ...Array.from({ length: this.#o.pubPaths }, (_, j) => `/pub/crash/p${j}`),
        ...Array.from({ length: this.#o.privPaths }, (_, j) => `/priv/crash/q${j}`),
      ]
      this.#users.push({ client, paths })
      for (const p of paths) this.#history.set(client.user + p, new WriteHistory())
      this.#followers.push({
        name: `${client.user.slice(0, 6)}/*`, filter: `${client.user}/*`, headers: client.headers(),
        wants: (ev) => ev.user === client.user, seen: [],
      })
    }
    this.#followers.push({ name: '*', filter: '*', headers: {}, wants: (ev) => !ev.path.startsWith('/priv/'), seen: [] })
  }

  // ---- one round: write, follow, kill --------------------------------------------------------

  async #crashRound(): Promise<void> {
    const url = this.server!.url
    for (const f of this.#followers) this.#follow(f, url)
    let killed = false
    const writers = Array.from({ length: this.#o.writers }, async () => {
      while (!killed) await this.#oneWrite(url)
    })
    const [lo, hi] = this.#o.killAfterMs
    await sleep(lo + Math.random() * (hi - lo))
    killed = true // no new writes from here: the stop interrupts those in flight
    // Killing a process that already died "succeeds", and its failed writes would pass for
    // ones the kill interrupted: a server that stopped on its own is a violation.
    if (!this.server!.running) {
      this.#violation(`the server stopped on its own (${this.server!.exitStatus}) before the kill; its last words:\n${this.server!.output.split('\n').slice(-40).join('\n')}`)
    }
    // Mostly SIGKILL; every fifth round an orderly SIGTERM, which must exit 0 within 5 s,
    // and every fifth a SIGTERM overtaken by SIGKILL halfway through the shutdown.
    const mode = this.#round % 5 === 2 ? 'term' : this.#round % 5 === 4 ? 'term, then kill' : 'kill'
    if (mode === 'kill') {
      await this.server!.kill()
    } else if (mode === 'term') {
      const t0 = performance.now()
      const code = await this.server!.stop()
      const ms = performance.now() - t0
      this.#f.termExitMsMax = Math.max(this.#f.termExitMsMax, Math.round(ms))
      if (code !== 0 || ms > 5000) this.#violation(`SIGTERM: exit ${code} after ${Math.round(ms)} ms; its last words:\n${this.server!.output.split('\n').slice(-40).join('\n')}`)
    } else {
      const stopped = this.server!.stop()
      await sleep(Math.random() * 150)
      await this.server!.kill()
      await stopped
    }
    await Promise.all(writers)
  }

  async #oneWrite(url: string): Promise<void> {
    const user = pick(this.#users)
    const path = pick(user.paths)
    const history = this.#history.get(user.client.user + path)!
    const del = Math.random() < 0.2
    const body = del ? undefined : randomBytes(this.#size())
    const state: State = body === undefined ? ABSENT : { hash: hashOf(body), size: body.length }
    const write = history.begin(state, performance.now())
    let status: number
    try {
      const res = await fetch(url + path, { method: del ? 'DELETE' : 'PUT', headers: user.client.headers(), body })
      status = res.status
      write.end = performance.now()
      const text = await res.text().catch(() => '')
      if (status === 201 || status === 204) {
        write.acked = true
        if (del) this.#f.ackedDeletes++
        else this.#f.ackedPuts++
        if (!del && body!.length > INLINE_MAX) this.#f.blobPuts++
        return
      }
      // A DELETE of an absent file changes nothing: not a write at all.
      history.writes.splice(history.writes.indexOf(write), 1)
      if (!(del && status === 404)) this.#violation(`${res.status} on ${del ? 'DELETE' : 'PUT'} ${path}: ${text}`)
    } catch {
      this.#f.unanswered++ // the server died first: it may or may not have landed
    }
  }

  #size(): number {
    const r = Math.random()
    if (r < 0.05) return pick([INLINE_MAX, INLINE_MAX + 1])
    if (r < 0.55) return 1 + Math.floor(Math.random() * 4096)
    if (r < 0.75) return 4096 + Math.floor(Math.random() * (INLINE_MAX - 4096))
    return INLINE_MAX + 1 + Math.floor(Math.random() * (this.#o.maxBody - INLINE_MAX))
  }

  #follow(f: Follower, url: string): void {
    const cursor = f.lastId === undefined ? '&lastSeq=0' : ''
    const headers = f.lastId === undefined ? f.headers : { ...f.headers, 'last-event-id': f.lastId }
    f.conn = openSse(`${url}/subscribe?filter=${encodeURIComponent(f.filter)}${cursor}`, headers, (frame) => {
      if (frame.id !== undefined) f.lastId = frame.id
      if (frame.data !== undefined && (frame.event === 'PUT' || frame.event === 'DEL')) f.seen.push(JSON.parse(frame.data) as StreamEvent)
    })
    f.conn.response.then(
      (res) => res.statusCode === 200 || this.#violation(`follower ${f.name} got ${res.statusCode}`),
      () => {}, // a kill right after the round started: it resumes next round
    )
  }

  // ---- after the restart: every promise ---------------------------------------------------------

  async #verify(): Promise<void> {
    const url = this.server!.url
    const info = (await (await fetch(`${url}/info`)).json()) as { events: { head: string } }
    const head = Number(info.events.head)
    const log = await this.#fullLog(url, head)
    this.#f.events = log.length
    const replayed = replay(log)
    const found = new Map<string, State>()
    let blobFiles = 0

    for (const user of this.#users) {
      for (const path of user.paths) {
        const key = user.client.user + path
        const state = await this.#read(url, user, path)
        found.set(key, state)
        if (state.hash !== null && state.size > INLINE_MAX) blobFiles++
        const history = this.#history.get(key)!
        const possible = history.possible()
        if (!possible.some((s) => sameState(s, state))) {
          this.#violation(`${path} of ${user.client.user.slice(0, 8)} holds ${describe(state)}, expected one of ${possible.map(describe).join(', ')}`)
        }
        if (history.writes.some((w) => !w.acked && w.state.hash !== null && sameState(w.state, state))) this.#f.unansweredLanded++
        const fromLog = replayed.get(key)
        if ((fromLog ?? null) !== state.hash) this.#violation(`replaying the log gives ${fromLog ?? 'nothing'} for ${path}, the file is ${describe(state)}`)
        this.#checkAckedInLog(key, path, history, log)
        history.settle(state)
      }
      await this.#checkListing(url, user, '/pub/crash/', found)
      await this.#checkListing(url, user, '/priv/crash/', found)
    }
    for (const key of replayed.keys()) if (!found.has(key)) this.#violation(`the log holds ${key}, which no writer touched`)

    // blob files on disk are the LevelDB engine's; PostgreSQL's blob sweep has its own tests
    const blobs = this.#o.env?.DATABASE_URL === undefined ? readdirSync(join(this.#o.dataDir, 'blobs')).length : blobFiles
    if (blobs !== blobFiles) this.#violation(`${blobs} blob files on disk for ${blobFiles} files larger than ${INLINE_MAX} bytes`)

    await this.#checkFeedText(url, log)
    await this.#checkRandomCursors(url, log, head)
    await this.#checkFollowers(url, log)
  }

  /** The whole log through each user's own stream (their /priv/ too); it must be 1..head, no gap. */
  async #fullLog(url: string, head: number): Promise<StreamEvent[]> {
    const all: StreamEvent[] = []
    for (const user of this.#users) {
      const got = await readSubscribe(`${url}/subscribe?filter=${user.client.user}/*&lastSeq=0&live=false`, user.client.headers())
      if (got.status !== 200) this.#violation(`log of ${user.client.user}: ${got.status} ${got.body}`)
      const unordered = disorder(got.events)
      if (unordered !== undefined) this.#violation(`log of ${user.client.user.slice(0, 8)}: ${unordered}`)
      all.push(...got.events)
    }
    all.sort((a, b) => Number(a.seq) - Number(b.seq))
    for (let i = 0; i < all.length; i++) {
      if (Number(all[i]!.seq) !== i + 1) {
        this.#violation(`the log has a gap or repeat: position ${i + 1} holds seq ${all[i]!.seq} (head ${head})`)
        break
      }
    }
    if (all.length !== head) this.#violation(`the log holds ${all.length} events but /info says head ${head}`)
    return all
  }

  async #read(url: string, user: User, path: string): Promise<State> {
    const res = await fetch(url + path, { headers: user.client.headers() })
    const bytes = new Uint8Array(await res.arrayBuffer())
    if (res.status === 404) return ABSENT
    if (res.status !== 200) {
      this.#violation(`GET ${path}: ${res.status}`)
      return ABSENT
    }
    const hash = hashOf(bytes)
    if (res.headers.get('etag') !== `"${hash}"`) this.#violation(`${path}: ETag ${res.headers.get('etag')} for content ${hash}`)
    return { hash, size: bytes.length }
  }

  /** Every acknowledged PUT left its event; every acknowledged DELETE too. */
  #checkAckedInLog(key: string, path: string, history: WriteHistory, log: StreamEvent[]): void {
    const mine = log.filter((ev) => ev.user + ev.path === key)
    for (const w of history.writes) {
      if (!w.acked || w.state.hash === null) continue
      if (!mine.some((ev) => ev.type === 'PUT' && ev.contentHash === w.state.hash)) this.#violation(`acknowledged PUT of ${path} (${w.state.hash}) is not in the log`)
    }
    const ackedDeletes = history.writes.filter((w) => w.acked && w.state.hash === null).length
    const before = this.#deletesLogged.get(key) ?? 0
    const logged = mine.filter((ev) => ev.type === 'DEL').length
    if (logged - before < ackedDeletes) this.#violation(`${ackedDeletes} acknowledged DELETEs of ${path}, ${logged - before} new DEL events`)
    this.#deletesLogged.set(key, logged)
  }

  async #checkListing(url: string, user: User, dir: string, found: Map<string, State>): Promise<void> {
    const listed = await new HomeserverClient(url, user.client.keypair, user.client.session).list(dir, 'limit=1000')
    const expected = user.paths
      .filter((p) => p.startsWith(dir) && found.get(user.client.user + p)!.hash !== null)
      .map((p) => `pubky://${user.client.user}${p}`)
    if (listed.join('\n') !== expected.join('\n')) this.#violation(`listing ${dir}: [${listed.join(' ')}] but the files are [${expected.join(' ')}]`)
  }

  /** GET /events/ pages: exactly the public part of the log, in order. */
  async #checkFeedText(url: string, log: StreamEvent[]): Promise<void> {
    const lines: string[] = []
    let cursor = '0'
    for (;;) {
      const text = await (await fetch(`${url}/events/?cursor=${cursor}&limit=1000`)).text()
      if (text === '') break
      const rows = text.split('\n')
      const last = rows.pop()!
      if (!last.startsWith('cursor: ')) {
        this.#violation(`/events/ page ends with ${JSON.stringify(last)}`)
        return
      }
      lines.push(...rows)
      cursor = last.slice('cursor: '.length)
    }
    const expected = log.filter((ev) => !ev.path.startsWith('/priv/')).map((ev) => `${ev.type} ${ev.uri}`)
    if (lines.join('\n') !== expected.join('\n')) this.#violation(`/events/ has ${lines.length} lines, the public log ${expected.length}`)
  }

  /** A follower starting at any cursor sees exactly the tail of the log after it. */
  async #checkRandomCursors(url: string, log: StreamEvent[], head: number): Promise<void> {
    const at = Math.floor(Math.random() * (head + 1))
    const pub = await readSubscribe(`${url}/subscribe?filter=*&lastSeq=${at}&live=false`)
    const want = log.filter((ev) => Number(ev.seq) > at && !ev.path.startsWith('/priv/'))
    this.#same(pub.events, want, `* from ${at}`)
    const user = pick(this.#users)
    // the same, by id in Last-Event-ID, on the path form, with the owner's session
    const seq = Math.floor(Math.random() * (head + 1))
    const id = idOf(seq)
    const own = await readSubscribe(`${url}/subscribe/${user.client.user}/*?live=false`, { ...user.client.headers(), 'last-event-id': id })
    this.#same(own.events, log.filter((ev) => Number(ev.seq) > seq && ev.user === user.client.user), `${user.client.user.slice(0, 8)} from ${id}`)
  }

  /**
   * Followers that were live through the crash: what they saw before it must all be in the
   * log (nothing is announced before it is durable), and resuming from their last id must
   * complete it exactly, without repeats.
   */
  async #checkFollowers(url: string, log: StreamEvent[]): Promise<void> {
    for (const f of this.#followers) {
      const cursor = f.lastId === undefined ? '&lastSeq=0' : ''
      const headers = f.lastId === undefined ? f.headers : { ...f.headers, 'last-event-id': f.lastId }
      const rest = await readSubscribe(`${url}/subscribe?filter=${encodeURIComponent(f.filter)}${cursor}&live=false`, headers)
      if (rest.status !== 200) this.#violation(`follower ${f.name} resuming from ${f.lastId}: ${rest.status} ${rest.body}`)
      f.seen.push(...rest.events)
      if (rest.lastId !== undefined) f.lastId = rest.lastId
      this.#same(f.seen, log.filter(f.wants), `follower ${f.name}`)
    }
  }

  #same(got: readonly StreamEvent[], want: readonly StreamEvent[], what: string): void {
    const diff = firstDifference(got, want)
    if (diff !== undefined) this.#violation(`${what}: ${diff}`)
  }

  #violation(message: string): void {
    this.#violations.push(`round ${this.#round}: ${message}`)
  }
}

function describe(s: State): string {
  return s.hash === null ? 'nothing' : `${s.size} bytes ${s.hash.slice(0, 10)}`
}

export function hashOf(bytes: Uint8Array): string {
  return Buffer.from(blake3(bytes)).toString('base64')
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
