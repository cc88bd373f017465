import type { RelayConfig } from '../config/config.js'
import { fail } from '../errors.js'
import { ANY_USER, parseFilter, type Filter } from '../subscriptions/filter.js'
import { smallBody } from 'hearth-homeserver-client/stream'
import { CursorBook } from './cursor-book.js'
import { Directory, type Placement } from './directory.js'
import { HomeserverStreams } from './homeserver-streams.js'
import type { RelayIngest } from './ingest.js'
import { DROP_REASONS, type DropReason } from './interest-stream.js'
import { Interests, type Holder } from './interests.js'
import { infoKey } from './upstream-fetch.js'
import type { ResolveError } from './user-record.js'
import { setOf } from '../shared/set-of.js'

export interface FollowingOptions {
  ingest: RelayIngest
  config: Readonly<RelayConfig>
  pkarrRelays: readonly string[]
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void }
}

/** The longest filter naming a user that a relay follows: each has a stored cursor named after it. */
export const MAX_FOLLOWED_FILTER = 1024

/** A user who moved: their old homeserver is read on up to where its log stood when the move was seen. */
export interface Leaving {
  homeserver: string
  /** the old homeserver's head then; undefined until it answers */
  upTo?: number
}

/**
 * The relay following people: what its subscribers want of each user (Interests), where each
 * user is (Directory, from their pkarr record), and the upstream streams to each homeserver
 * carrying the union of what is wanted of its users (HomeserverStreams).
 *
 * A move: a user whose record names a new homeserver is read on the old one up to where its
 * log stood when the move was seen, then followed on the new one, so their events keep their
 * order across the move. Events for a user from any other homeserver, or from the old one past
 * that point, are dropped and counted (`elsewhere`).
 */
export class Following {
  readonly interests: Interests
  readonly directory: Directory
  readonly #opts: FollowingOptions
  readonly #homeservers = new Map<string, HomeserverStreams>()
  /** homeserver → users placed there, or leaving it */
  readonly #usersOn = new Map<string, Set<string>>()
  readonly #leaving = new Map<string, Leaving>()
  readonly dropped = new Map<DropReason, number>(DROP_REASONS.map((r) => [r, 0]))
  #stopped = false

  constructor(options: FollowingOptions) {
    this.#opts = options
    const { config } = options
    this.interests = new Interests(config.lingerMs, (user) => this.#changed(user))
    this.directory = new Directory({
      relays: options.pkarrRelays,
      allowPrivate: config.allowPrivateAddresses,
      record: { minMs: config.recordMinMs, maxMs: config.recordMaxMs },
      retry: { baseMs: Math.min(1000, config.retryMaxMs), maxMs: config.retryMaxMs },
      perSecond: config.resolvesPerSecond,
      placed: (user, now, before) => this.#placed(user, now, before),
      unresolved: (user, err) => this.#unresolved(user, err),
    })
  }

  start(): void {
    for (const user of this.#opts.config.follow) this.interests.stand(parseFilter(`${user}/*`))
  }

  /**
   * A subscriber's filters: those naming one user become interests until `release`. Refused
   * (4xx) past the relay's limits; `*` filters ask nothing of anyone.
   */
  hold(filters: readonly Filter[], holder: Holder): () => void {
    const { maxFiltersPerSubscriber, maxUsers } = this.#opts.config
    const named = filters.filter((f) => f.user !== ANY_USER)
    if (named.length === 0) return () => {}
    const long = named.find((f) => Buffer.byteLength(f.text) > MAX_FOLLOWED_FILTER)
    if (long !== undefined) fail('InvalidFilter', `A filter naming a user is at most ${MAX_FOLLOWED_FILTER} bytes on a relay, which keeps a cursor for each (got ${Buffer.byteLength(long.text)})`)
    if (named.length > maxFiltersPerSubscriber) fail('TooManyFilters', `At most ${maxFiltersPerSubscriber} filters naming users per stream on this relay (RELAY_FILTERS_PER_SUBSCRIBER), got ${named.length}`)
    const fresh = new Set(named.map((f) => f.user).filter((u) => !this.interests.has(u)))
    if (this.interests.userCount + fresh.size > maxUsers) {
      fail('TooManyUsers', `This relay follows at most ${maxUsers} users (RELAY_MAX_USERS); try again when others lapse`)
    }
    const release = this.interests.hold(named, holder)
    // a user already known to be unresolvable is reported at once
    for (const user of new Set(named.map((f) => f.user))) {
      const failure = this.directory.failure(user)
      if (failure !== undefined) holder.unresolved(user, failure.reason)
    }
    return release
  }

  /** The users who moved and are still read where they were: that homeserver, and up to where (undefined until it answers). */
  leaving(): Iterable<Readonly<Leaving>> {
    return this.#leaving.values()
  }

  homeservers(): ReadonlyMap<string, HomeserverStreams> {
    return this.#homeservers
  }

  get skipped(): number {
    let n = 0
    for (const h of this.#homeservers.values()) n += h.skipped
    return n
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.interests.stop()
    await this.directory.stop()
    await Promise.all([...this.#homeservers.values()].map((h) => h.stop()))
  }

  /** Whether an event of `user` at `originSeq` from `homeserver` belongs in the log. */
  #accepts(homeserver: string, user: string, originSeq: number): boolean {
    const leaving = this.#leaving.get(user)
    if (leaving !== undefined) return leaving.homeserver === homeserver && (leaving.upTo === undefined || originSeq <= leaving.upTo)
    return this.directory.placement(user)?.homeserver === homeserver
  }

  /** Whether `user`'s filters go to `homeserver` now: where they are placed, once the one they left is read up to the move. */
  #followedOn(user: string, homeserver: string): boolean {
    if (!this.interests.has(user)) return false
    const leaving = this.#leaving.get(user)
    if (leaving !== undefined) return leaving.homeserver === homeserver
    return this.directory.placement(user)?.homeserver === homeserver
  }

  #changed(user: string): void {
    if (this.#stopped) return
    if (this.interests.has(user)) {
      this.directory.want(user)
    } else {
      this.directory.forget(user)
      this.#leaving.delete(user)
    }
    for (const [homeserver, users] of this.#usersOn) if (users.has(user)) this.#refresh(homeserver)
  }

  #placed(user: string, now: Placement, before: Placement | undefined): void {
    if (this.#stopped) return
    if (before !== undefined && before.homeserver !== now.homeserver) {
      this.#opts.log.info({ from: before.homeserver, to: now.homeserver }, 'relay: a followed user moved homeservers')
      this.#leave(user, before)
    } else if (before === undefined) {
      // placed for the first time in this process: a homeserver the user was followed on
      // before (a move seen by an earlier process, cut short by a crash) is read up to where
      // it stands now, so nothing the user wrote there before moving is lost
      const earlier = this.#opts.ingest.book.homeserversOf(user).find((h) => h !== now.homeserver)
      if (earlier !== undefined) this.#leave(user, { homeserver: earlier })
    }
    setOf(this.#usersOn, now.homeserver).add(user)
    this.#refresh(now.homeserver, now.url)
  }

  /** `user` is read on `from` up to where its log stands now, then followed where they are placed. */
  #leave(user: string, from: { homeserver: string; url?: string }): void {
    const leaving: Leaving = { homeserver: from.homeserver }
    this.#leaving.set(user, leaving)
    setOf(this.#usersOn, from.homeserver).add(user)
    void (async () => {
      const url = from.url ?? (await this.directory.endpoint(from.homeserver).catch(() => undefined))
      if (url === undefined) return this.#left(user, leaving)
      this.#refresh(from.homeserver, url)
      leaving.upTo = await this.#headOf({ homeserver: from.homeserver, url })
      this.#drained(from.homeserver)
    })()
    // an old homeserver that stops answering holds the user back no longer than this
    setTimeout(() => this.#left(user, leaving), 2 * this.#opts.config.idleMs).unref()
  }

  #unresolved(user: string, err: ResolveError): void {
    for (const holder of this.interests.holders(user)) holder.unresolved(user, err.reason)
  }

  /** The streams of `homeserver` carry again exactly what is wanted of its users. */
  #refresh(homeserver: string, url?: string): void {
    const users = this.#usersOn.get(homeserver)
    const wanted = new Map<string, Filter>()
    for (const user of users ?? []) {
      const placedHere = this.directory.placement(user)?.homeserver === homeserver
      if (!this.interests.has(user) || (!placedHere && this.#leaving.get(user)?.homeserver !== homeserver)) {
        users!.delete(user)
        continue
      }
      // placed here, but still read where they were: followed here once that is done
      if (!this.#followedOn(user, homeserver)) continue
      for (const f of this.interests.filtersOf(user)) wanted.set(f.text, f)
      url ??= placedHere ? this.directory.placement(user)!.url : undefined
    }
    let streams = this.#homeservers.get(homeserver)
    if (streams === undefined) {
      if (wanted.size === 0 || url === undefined) return
      streams = new HomeserverStreams(homeserver, url, {
        homeserver,
        ingest: this.#opts.ingest,
        idleMs: this.#opts.config.idleMs,
        backoff: { baseMs: Math.min(1000, this.#opts.config.retryMaxMs), maxMs: this.#opts.config.retryMaxMs },
        accepts: (u, seq) => this.#accepts(homeserver, u, seq),
        dropped: (reason) => this.dropped.set(reason, this.dropped.get(reason)! + 1),
        progressed: () => this.#drained(homeserver),
        log: this.#opts.log,
        filtersPerStream: this.#opts.config.streamFilters,
        maxStreams: this.#opts.config.streamsPerHomeserver,
      })
      this.#homeservers.set(homeserver, streams)
    }
    void streams.want(wanted, url)
    if (wanted.size === 0) {
      this.#homeservers.delete(homeserver)
      if (users?.size === 0) this.#usersOn.delete(homeserver)
      void streams.stop()
    }
  }

  /** Users leaving `homeserver` whose filters there have been read up to where it stood: no longer followed there. */
  #drained(homeserver: string): void {
    const book = this.#opts.ingest.book
    for (const [user, leaving] of [...this.#leaving]) {
      if (leaving.homeserver !== homeserver || leaving.upTo === undefined) continue
      const upTo = leaving.upTo
      const read = this.interests.filtersOf(user).every((f) => (book.get(CursorBook.filterCursorName(homeserver, f))?.cursor ?? 0) >= upTo)
      if (read) this.#left(user, leaving)
    }
  }

  /** `user` is no longer read on the homeserver they left: followed where they are. */
  #left(user: string, leaving: Leaving): void {
    if (this.#stopped || this.#leaving.get(user) !== leaving) return
    this.#leaving.delete(user)
    const now = this.directory.placement(user)
    if (now !== undefined) this.#refresh(now.homeserver, now.url)
    this.#refresh(leaving.homeserver)
  }

  /** A homeserver's head now, from its `/info`; 0 when it does not answer as itself (nothing more is taken from it). */
  async #headOf(at: Placement): Promise<number> {
    const { idleMs } = this.#opts.config
    try {
      const signal = AbortSignal.timeout(idleMs)
      const res = await fetch(`${at.url}/info`, { redirect: 'manual', signal })
      const text = res.ok ? await smallBody(res, idleMs, signal) : ''
      const head = infoKey(text) !== at.homeserver ? undefined : Number((JSON.parse(text) as { events?: { head?: unknown } }).events?.head)
      return head !== undefined && Number.isSafeInteger(head) ? head : 0
    } catch {
      return 0
    }
  }
}
