import type { EventLog } from '../events/event-log.js'
import type { Store } from '../kv/store.js'
import type { RelayConfig } from '../config/config.js'
import { parseFilters } from '../subscriptions/filter.js'
import { CursorBook } from './cursor-book.js'
import { Following } from './following.js'
import { RelayIngest } from './ingest.js'
import { Upstream, type UpstreamOptions } from './upstream.js'
import { parseUpstream, sourceOf } from './upstream-spec.js'

export interface RelayOptions {
  store: Store
  events: EventLog
  config: Readonly<RelayConfig>
  pkarrRelays: readonly string[]
  log: UpstreamOptions['log']
}

/**
 * `hearth relay`'s work: one follower per upstream homeserver the operator named, the users its
 * subscribers ask for (Following), and one ingest appending what they bring to this process's
 * own log. Everything else a relay does (serving `/subscribe`, `/events/`, retention, metrics)
 * is the homeserver's own code over that log.
 */
export class Relay {
  readonly ingest: RelayIngest
  readonly upstreams: readonly Upstream[]
  readonly following: Following
  readonly #store: Store
  readonly #config: Readonly<RelayConfig>

  constructor(options: RelayOptions) {
    this.#store = options.store
    this.#config = options.config
    this.ingest = new RelayIngest(options.store, options.events)
    this.upstreams = options.config.upstreams.map((spec) => new Upstream({
      spec,
      filters: options.config.filters,
      store: options.store,
      ingest: this.ingest,
      pkarrRelays: options.pkarrRelays,
      idleMs: options.config.idleMs,
      log: options.log,
      backoff: { baseMs: Math.min(1000, options.config.retryMaxMs), maxMs: options.config.retryMaxMs },
      taken: (homeserver, by) => this.upstreams.find((u) => u !== by && u.homeserver === homeserver),
    }))
    this.following = new Following({ ingest: this.ingest, config: options.config, pkarrRelays: options.pkarrRelays, log: options.log })
  }

  /**
   * Reads the stored cursors first: which of them cover an event decides whether it is in the
   * log already. An upstream no longer configured is left out: one source's cursor never stands
   * for another's events (a wrong pin replaced by the right one relays the right one's log).
   */
  async start(): Promise<void> {
    const sources = new Set(this.#config.upstreams.map((spec) => sourceOf(parseUpstream(spec)!)))
    const stored = (await this.#store.upstreamCursors()).filter((c) => CursorBook.isFilterCursor(c.upstream) || sources.has(c.upstream))
    this.ingest.book.load(stored, parseFilters(this.#config.filters))
    for (const u of this.upstreams) u.start()
    this.following.start()
  }

  /** Stops following; what was received and not yet committed comes again after a restart. */
  async stop(): Promise<void> {
    await Promise.all([...this.upstreams.map((u) => u.stop()), this.following.stop()])
    await this.ingest.idle()
  }
}
