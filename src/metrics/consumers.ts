import { Counter, Gauge, type Registry } from 'prom-client'
import type { ConsumerObserver } from '../consumers/observer.js'

/**
 * Durable consumers' metrics (SPEC §12): counters driven by deliveries, acks and dead
 * letters, and gauges read at each scrape. No label names a consumer or a user.
 */
export function consumerCounters(registry: Registry): ConsumerObserver {
  const registers = [registry]
  const deliveries = new Counter({ name: 'hearth_consumer_deliveries_total', help: 'Events written to consumer streams, redeliveries included', registers })
  const redeliveries = new Counter({ name: 'hearth_consumer_redeliveries_total', help: 'Of those, events that went out before (an ack wait ran out, a nak, a worker left)', registers })
  const acks = new Counter({ name: 'hearth_consumer_acks_total', help: 'Events acknowledged (explicitly, or written out under automatic acks)', registers })
  const dead = new Counter({ name: 'hearth_consumer_dead_letters_total', help: 'Events parked as dead, by reason (maxDeliver, term)', labelNames: ['reason'], registers })
  for (const reason of ['maxDeliver', 'term']) dead.inc({ reason }, 0)
  const commits = new Counter({ name: 'hearth_consumer_commits_total', help: "Durable commits of consumers' state (one per group of changes made together)", registers })
  const changes = new Counter({ name: 'hearth_consumer_changes_total', help: 'Changes of consumers\' state (claims, acks, releases) those commits grouped', registers })
  return {
    delivered(n, redelivered) {
      deliveries.inc(n)
      if (redelivered > 0) redeliveries.inc(redelivered)
    },
    acked: (n) => n > 0 && acks.inc(n),
    dead: (reason, n) => dead.inc({ reason }, n),
    committed(n) {
      commits.inc()
      changes.inc(n)
    },
  }
}

/** Gauges over this instance's consumer streams, read at each scrape. */
export function watchConsumers(registry: Registry, hub: { stats(): { consumers: number; streams: number; pending: number } }): void {
  const registers = [registry]
  new Gauge({ name: 'hearth_consumers', help: 'Consumers with streams open on this instance', registers, collect() {
    this.set(hub.stats().consumers)
  } })
  new Gauge({ name: 'hearth_consumer_streams', help: 'Consumer streams open on this instance', registers, collect() {
    this.set(hub.stats().streams)
  } })
  new Gauge({ name: 'hearth_consumer_pending', help: 'Events out unacked, of the consumers with streams open on this instance', registers, collect() {
    this.set(hub.stats().pending)
  } })
}
