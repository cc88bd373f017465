import type { PageStats } from './pages.js'
import type { Protocol } from './wire.js'

/** Where a stream stands: sending a snapshot, reading the log, pushed to live, or catching up after falling behind. */
export const PHASES = ['snapshot', 'replay', 'live', 'catching_up'] as const
export type Phase = (typeof PHASES)[number]

/**
 * What the feed reports as it works, for the metrics. Calls come per commit group or per page
 * written, not per event and subscriber, so counting costs nothing on the fan-out path.
 */
export interface FeedObserver {
  /** `n` events of `protocol` were written to sockets, read from the log or pushed live */
  delivered(protocol: Protocol, source: 'replay' | 'live', n: number): void
  /** a live stream's socket was backed up: it left the live path to catch up from the log */
  fellBehind(protocol: Protocol): void
}

export const NO_OBSERVER: FeedObserver = { delivered() {}, fellBehind() {} }

/** The engine's open streams, read at each metrics scrape. */
export interface FeedStats {
  streams: { protocol: Protocol; phase: Phase; count: number }[]
  /** bytes written to streams that their sockets have not taken yet */
  unsentBytes: number
  /** the log pages replays hold, across all streams */
  pages: PageStats
  /** writes handed to sockets since the start, by protocol: each carries one or more frames */
  writes: Record<Protocol, number>
}
