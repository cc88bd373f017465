import type { EventLog } from '../events/event-log.js'
import type { Store } from '../kv/store.js'
import type { RelayConfig } from '../config/config.js'
import { RelayIngest } from './ingest.js'
import { Upstream, type UpstreamOptions } from './upstream.js'

export interface RelayOptions {
  store: Store
  events: EventLog
  config: Readonly<RelayConfig>
  pkarrRelays: readonly string[]
  log: UpstreamOptions['log']
}

/**
 * `hearth relay`'s work: one follower per upstream homeserver, one ingest appending what they
 * bring to this process's own log. Everything else a relay does (serving `/subscribe`,
 * `/events/`, retention, metrics) is the homeserver's own code over that log.
 */
export class Relay {
  readonly ingest: RelayIngest
  readonly upstreams: readonly Upstream[]

  constructor(options: RelayOptions) {
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
  }

  start(): void {
    for (const u of this.upstreams) u.start()
  }

  /** Stops following; what was received and not yet committed comes again after a restart. */
  async stop(): Promise<void> {
    await Promise.all(this.upstreams.map((u) => u.stop()))
    await this.ingest.idle()
  }
}
