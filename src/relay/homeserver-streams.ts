import type { Filter } from '../subscriptions/filter.js'
import { InterestStream, type InterestStreamOptions } from './interest-stream.js'

export interface HomeserverStreamsOptions extends Omit<InterestStreamOptions, 'filters' | 'url'> {
  /** filters one upstream stream carries (a homeserver takes at most 64) */
  filtersPerStream: number
  /** upstream streams to one homeserver at most; filters past them are skipped and counted */
  maxStreams: number
}

/**
 * The upstream streams to one homeserver: together they carry exactly the filters wanted of
 * its users now, each filter in one stream. A change of what is wanted touches only the
 * streams it must: a new filter joins a stream with room (which is opened again with it) or a
 * new stream; a filter no longer wanted leaves its stream (opened again without it, or closed
 * when it was the last). Changes are applied one at a time, in order.
 */
export class HomeserverStreams {
  readonly homeserver: string
  #url: string
  readonly #opts: HomeserverStreamsOptions
  #streams: InterestStream[] = []
  #wanted = new Map<string, Filter>()
  #nextId = 0
  #applying: Promise<void> = Promise.resolve()
  #stopped = false
  /** filters wanted now that no stream carries: past the limit of streams */
  skipped = 0

  constructor(homeserver: string, url: string, options: HomeserverStreamsOptions) {
    this.homeserver = homeserver
    this.#url = url
    this.#opts = options
  }

  get url(): string {
    return this.#url
  }

  get streams(): readonly InterestStream[] {
    return this.#streams
  }

  /** What its users' subscribers want now; the streams follow, in the order of the calls. */
  want(filters: ReadonlyMap<string, Filter>, url = this.#url): Promise<void> {
    const moved = url !== this.#url
    this.#url = url
    this.#wanted = new Map(filters)
    this.#applying = this.#applying.then(() => this.#apply(moved))
    return this.#applying
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await this.#applying
    await Promise.all(this.#streams.map((s) => s.stop()))
    this.#streams = []
  }

  async #apply(moved: boolean): Promise<void> {
    if (this.#stopped) return
    const wanted = this.#wanted
    const { filtersPerStream, maxStreams } = this.#opts
    // each stream keeps what is still wanted of its filters
    const plan = this.#streams.map((s) => ({ old: s as InterestStream | undefined, filters: s.filters.filter((f) => wanted.has(f.text)) }))
    const placed = new Set(plan.flatMap((p) => p.filters.map((f) => f.text)))
    const toPlace = [...wanted.values()].filter((f) => !placed.has(f.text))
    for (const p of plan) while (toPlace.length > 0 && p.filters.length < filtersPerStream) p.filters.push(toPlace.shift()!)
    while (toPlace.length > 0 && plan.length < maxStreams) plan.push({ old: undefined, filters: toPlace.splice(0, filtersPerStream) })
    this.skipped = toPlace.length
    const next: InterestStream[] = []
    const stopping: Promise<void>[] = []
    for (const p of plan) {
      const same = p.old !== undefined && !moved && p.old.filters.length === p.filters.length && p.old.filters.every((f, i) => f.text === p.filters[i]!.text)
      if (same) {
        next.push(p.old!)
        continue
      }
      if (p.old !== undefined) stopping.push(p.old.stop())
      if (p.filters.length > 0) next.push(new InterestStream({ ...this.#opts, url: this.#url, filters: p.filters }, this.#nextId++))
    }
    // a replaced stream ends before its successor starts, so the two never race for the same events
    await Promise.all(stopping)
    // and a new one shows, from the first, where its filters stand in the Store (another process may have moved them)
    const fresh = next.filter((s) => !this.#streams.includes(s))
    await this.#opts.ingest.reload(fresh.flatMap((s) => s.cursorNames)).catch(() => {})
    this.#streams = next
    if (this.#stopped) return
    for (const s of next) s.start()
  }
}
