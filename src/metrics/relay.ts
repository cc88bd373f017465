import { Counter, Gauge, type Registry } from 'prom-client'
import { UPSTREAM_FAULTS } from '../relay/upstream-fetch.js'
import type { Upstream } from '../relay/upstream.js'
import type { Following } from '../relay/following.js'
import { DROP_REASONS } from '../relay/interest-stream.js'
import { UNRESOLVED_REASONS } from '../relay/user-record.js'

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

/**
 * The users a relay follows for its subscribers, read at each scrape. No label holds a user
 * key or a homeserver key: only counts, and reasons from fixed sets.
 */
export function watchFollowing(registry: Registry, following: Following): void {
  const registers = [registry]
  new Gauge({
    name: 'hearth_relay_followed_users',
    help: 'Users the relay follows now (held by subscribers, lingering, or standing)',
    registers,
    collect() {
      this.set(following.interests.userCount)
    },
  })
  new Gauge({
    name: 'hearth_relay_unresolved_users',
    help: 'Followed users whose homeserver is not known yet',
    registers,
    collect() {
      this.set(following.directory.unresolvedCount)
    },
  })
  new Gauge({
    name: 'hearth_relay_followed_homeservers',
    help: 'Homeservers the followed users are on, with upstream streams open to them',
    registers,
    collect() {
      this.set(following.homeservers().size)
    },
  })
  new Gauge({
    name: 'hearth_relay_interest_streams',
    help: 'Upstream streams open for followed users, and the filters they carry',
    labelNames: ['of'],
    registers,
    collect() {
      let streams = 0
      let filters = 0
      for (const h of following.homeservers().values()) for (const s of h.streams) (streams++, (filters += s.filters.length))
      this.set({ of: 'streams' }, streams)
      this.set({ of: 'filters' }, filters)
    },
  })
  new Counter({
    name: 'hearth_relay_resolution_failures_total',
    help: "Reads of a followed user's record that failed, by reason",
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset()
      for (const reason of UNRESOLVED_REASONS) this.inc({ reason }, following.directory.failures.get(reason)!)
    },
  })
  new Counter({
    name: 'hearth_relay_moves_total',
    help: 'Followed users seen moving to another homeserver',
    registers,
    collect() {
      this.reset()
      this.inc(following.directory.moves)
    },
  })
  new Counter({
    name: 'hearth_relay_dropped_events_total',
    help: 'Events a followed homeserver sent that the relay did not store, by reason (unasked, elsewhere)',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset()
      for (const reason of DROP_REASONS) this.inc({ reason }, following.dropped.get(reason)!)
    },
  })
}
