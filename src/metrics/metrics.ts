import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { FeedObserver } from '../feed/observer.js'
import { PROTOCOLS } from '../feed/wire.js'
import { watchState, type MetricSources } from './state.js'
import { watchFollowing, watchRelay } from './relay.js'
import type { Upstream } from '../relay/upstream.js'
import type { Following } from '../relay/following.js'
import type { ConsumerObserver } from '../consumers/observer.js'
import { consumerCounters, watchConsumers } from './consumers.js'

export type { MetricSources }

/**
 * Every Prometheus metric of the homeserver, in its own registry, built once in the context.
 * Counters and histograms are driven from the code path they count (requests from the
 * response hook, deliveries from the feed, commits from the log's announcement, publishes
 * from the pkarr publisher); gauges read the live state at each scrape (src/metrics/state.ts).
 *
 * Conventions: `hearth_` prefix, base units (seconds, bytes), `_total` counters, and labels
 * with a fixed set of values only (a route's pattern, never its path; never a user key).
 *
 * Relay metrics (`hearth relay`: each upstream's cursor, state and lag, resets) register
 * here too, next to the pkarr ones, keyed by the upstream's position in the configuration.
 */
export class Metrics {
  readonly registry = new Registry()
  readonly feed: FeedObserver
  readonly consumers: ConsumerObserver
  readonly #requests: Histogram<'method' | 'route' | 'status_code'>
  readonly #publishes: Counter<'result'>
  readonly #lastPublished: Gauge
  #processCollected = false

  constructor() {
    const registers = [this.registry]
    this.#requests = new Histogram({
      name: 'hearth_http_request_duration_seconds',
      help: 'Time from a request to the end of its answer, by route pattern and status (SSE streams excluded: see hearth_streams)',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    })
    const delivered = new Counter({
      name: 'hearth_events_delivered_total',
      help: 'Events written to SSE streams, by protocol and by source (replayed from the log, or pushed live)',
      labelNames: ['protocol', 'source'],
      registers,
    })
    const fellBehind = new Counter({
      name: 'hearth_stream_catch_ups_total',
      help: 'Times a live stream found its socket backed up and left the live path to catch up from the log',
      labelNames: ['protocol'],
      registers,
    })
    this.feed = {
      delivered: (protocol, source, n) => delivered.inc({ protocol, source }, n),
      fellBehind: (protocol) => fellBehind.inc({ protocol }),
    }
    this.consumers = consumerCounters(this.registry)
    this.#publishes = new Counter({
      name: 'hearth_pkarr_publishes_total',
      help: "Attempts to publish the homeserver's pkarr packet to a relay, by result",
      labelNames: ['result'],
      registers,
    })
    this.#lastPublished = new Gauge({
      name: 'hearth_pkarr_last_published_timestamp_seconds',
      help: "When the homeserver's pkarr packet last reached a relay (Unix time; 0: not yet)",
      registers,
    })
    // zero-valued series exist from the start, so rates and alerts see them before the first event
    for (const protocol of PROTOCOLS) {
      for (const source of ['replay', 'live'] as const) delivered.inc({ protocol, source }, 0)
      fellBehind.inc({ protocol }, 0)
    }
    for (const result of ['ok', 'failed']) this.#publishes.inc({ result }, 0)
  }

  /** One finished HTTP answer; `route` is the pattern the router matched (`/pub/*`), not the path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.#requests.observe({ method, route, status_code: String(status) }, seconds)
  }

  published(ok: boolean): void {
    this.#publishes.inc({ result: ok ? 'ok' : 'failed' })
    if (ok) this.#lastPublished.set(Date.now() / 1000)
  }

  /** Registers the gauges over the homeserver's state and starts counting commits. */
  watch(sources: MetricSources): void {
    watchState(this.registry, sources)
  }

  /** Registers the gauges over this instance's consumer streams. */
  watchConsumers(hub: Parameters<typeof watchConsumers>[1]): void {
    watchConsumers(this.registry, hub)
  }

  /** Registers the gauges and counters over a relay's upstreams. */
  watchRelay(upstreams: readonly Upstream[], following: Following): void {
    watchRelay(this.registry, upstreams)
    watchFollowing(this.registry, following)
  }

  /** The process's own metrics (CPU, memory, event loop, GC), once, for the metrics listener. */
  collectProcess(): void {
    if (this.#processCollected) return
    this.#processCollected = true
    collectDefaultMetrics({ register: this.registry, prefix: 'hearth_' })
  }
}
