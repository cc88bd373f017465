import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { HearthEvent } from '../events/event.js'
import { PHASES, type FeedStats } from '../feed/observer.js'
import { PROTOCOLS } from '../feed/wire.js'

export interface MetricSources {
  events: {
    readonly head: number
    readonly floor: number
    onAppend(listener: (events: readonly HearthEvent[]) => void): () => void
  }
  /** the writer, which tells of each commit group it made */
  writer: { onCommit(observer: (group: { events: number; ms: number }) => void): () => void }
  feed: { stats(): FeedStats }
  /** users signed up and the bytes their files count against quotas */
  storage(): Promise<{ users: number; bytes: number }>
}

/**
 * The log's and the feed's state, read at each scrape; events appended, driven by the log's
 * announcements (with PostgreSQL, every instance's commits, as this instance's subscribers
 * see them); commit groups and durations, driven by this instance's writer.
 */
export function watchState(registry: Registry, sources: MetricSources): void {
  const registers = [registry]
  const { events, writer, feed } = sources
  new Gauge({
    name: 'hearth_event_log_head',
    help: 'The seq of the newest event in the log (fsynced and announced)',
    registers,
    collect() {
      this.set(events.head)
    },
  })
  new Gauge({
    name: 'hearth_event_log_floor',
    help: 'The seq of the oldest event kept in the log (EVENT_RETENTION prunes below it)',
    registers,
    collect() {
      this.set(events.floor)
    },
  })
  const appended = new Counter({ name: 'hearth_events_appended_total', help: 'Events appended to the log, by type', labelNames: ['type'], registers })
  const groups = new Histogram({
    name: 'hearth_commit_group_size',
    help: 'Events per commit group (one atomic, fsynced batch shared by concurrent writers)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
    registers,
  })
  const durations = new Histogram({
    name: 'hearth_commit_duration_seconds',
    help: "Time from a commit group's first read to its announcement: reads, checks and the fsync",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  })
  for (const type of ['PUT', 'DEL']) appended.inc({ type }, 0)
  events.onAppend((group) => {
    let puts = 0
    for (const ev of group) if (ev.type === 'PUT') puts++
    if (puts > 0) appended.inc({ type: 'PUT' }, puts)
    if (group.length > puts) appended.inc({ type: 'DEL' }, group.length - puts)
  })
  writer.onCommit((group) => {
    if (group.events === 0) return
    groups.observe(group.events)
    durations.observe(group.ms / 1000)
  })
  new Gauge({
    name: 'hearth_streams',
    help: `Open SSE streams, by protocol and phase (${PHASES.join(', ')})`,
    labelNames: ['protocol', 'phase'],
    registers,
    collect() {
      this.reset()
      for (const protocol of PROTOCOLS) {
        for (const phase of PHASES) this.set({ protocol, phase }, 0)
      }
      for (const s of feed.stats().streams) this.set({ protocol: s.protocol, phase: s.phase }, s.count)
    },
  })
  new Counter({
    name: 'hearth_feed_writes_total',
    help: 'Writes handed to the sockets of SSE streams, by protocol; one write carries one or more frames (events, keepalives, marks)',
    labelNames: ['protocol'],
    registers,
    collect() {
      this.reset()
      for (const [protocol, n] of Object.entries(feed.stats().writes)) this.inc({ protocol }, n)
    },
  })
  new Gauge({
    name: 'hearth_stream_unsent_bytes',
    help: 'Bytes written to SSE streams that their sockets have not taken yet (slow readers hold them)',
    registers,
    collect() {
      this.set(feed.stats().unsentBytes)
    },
  })
  new Gauge({
    name: 'hearth_replay_pages_held',
    help: 'Pages of the log held for replays and catch-ups, across all streams (being read, written out, or kept for the next reader)',
    registers,
    collect() {
      this.set(feed.stats().pages.held)
    },
  })
  new Gauge({
    name: 'hearth_replay_page_bytes',
    help: 'Bytes those pages count against their budget: events and the frames kept with them, and a reservation for each read under way',
    registers,
    collect() {
      this.set(feed.stats().pages.bytes)
    },
  })
  // One scan serves both gauges: the second collect reuses the first's answer.
  let totals: Promise<{ users: number; bytes: number }> | undefined
  const storage = () => (totals ??= sources.storage().finally(() => setImmediate(() => (totals = undefined))))
  new Gauge({
    name: 'hearth_users',
    help: 'Users signed up on this homeserver',
    registers,
    async collect() {
      this.set((await storage()).users)
    },
  })
  new Gauge({
    name: 'hearth_storage_used_bytes',
    help: "Bytes of file content stored, as counted against users' quotas",
    registers,
    async collect() {
      this.set((await storage()).bytes)
    },
  })
}
