import { Counter, Gauge, type Registry } from 'prom-client'
import { UPSTREAM_FAULTS, type Upstream } from '../relay/upstream.js'

const STATES = ['connecting', 'catching-up', 'live', 'failed'] as const

/**
 * `hearth relay`'s upstreams, read at each scrape. The `upstream` label is an upstream as
 * configured (a URL or a key): a fixed set, chosen by the operator.
 */
export function watchRelay(registry: Registry, upstreams: readonly Upstream[]): void {
  const registers = [registry]
  new Gauge({
    name: 'hearth_relay_upstream_cursor',
    help: "The last upstream seq in the relay's log, by upstream",
    labelNames: ['upstream'],
    registers,
    collect() {
      for (const u of upstreams) this.set({ upstream: u.spec }, u.cursor)
    },
  })
  new Gauge({
    name: 'hearth_relay_upstream_lag_events',
    help: "Events between the relay's cursor and the upstream's head, as last seen, by upstream",
    labelNames: ['upstream'],
    registers,
    collect() {
      for (const u of upstreams) this.set({ upstream: u.spec }, u.lag)
    },
  })
  new Gauge({
    name: 'hearth_relay_upstream_state',
    help: "1 for the upstream's current state (connecting, catching-up, live, failed), 0 for the others",
    labelNames: ['upstream', 'state'],
    registers,
    collect() {
      for (const u of upstreams) for (const state of STATES) this.set({ upstream: u.spec, state }, u.state === state ? 1 : 0)
    },
  })
  // counters kept by each upstream; read at scrape time, they only ever grow within a process
  new Counter({
    name: 'hearth_relay_upstream_faults_total',
    help: 'Times an upstream was dropped and retried, by upstream and reason',
    labelNames: ['upstream', 'reason'],
    registers,
    collect() {
      this.reset()
      for (const u of upstreams) for (const reason of UPSTREAM_FAULTS) this.inc({ upstream: u.spec, reason }, u.faults().get(reason)!)
    },
  })
  new Counter({
    name: 'hearth_relay_upstream_resets_total',
    help: "Times an upstream had pruned events the relay had not read yet, or its head was behind the relay's cursor and its log was relayed again, by upstream",
    labelNames: ['upstream'],
    registers,
    collect() {
      this.reset()
      for (const u of upstreams) this.inc({ upstream: u.spec }, u.resets)
    },
  })
  new Counter({
    name: 'hearth_relay_events_total',
    help: "Upstream events appended to the relay's log by this process, by upstream",
    labelNames: ['upstream'],
    registers,
    collect() {
      this.reset()
      for (const u of upstreams) this.inc({ upstream: u.spec }, u.relayed)
    },
  })
}
