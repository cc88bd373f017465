import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/log.js'
import { EventFrames } from './frames.js'

/** Events read from the log per page of a replay or catch-up. */
export const PAGE = 256

/** Pages the forward replays of all streams together may hold at once. */
export const PAGES_HELD = 32

/**
 * Events after `after`, oldest first, read from the whole log or from one user's index, as the
 * log stood when the read started (`head`, `floor`). A full page (PAGE events) holds every event
 * up to its last; a short one holds every event up to `head`.
 */
export class Page {
  readonly user: string | undefined
  readonly after: number
  readonly head: number
  readonly floor: number
  readonly events: Promise<HearthEvent[]>
  /** set once read: the highest seq this page speaks for */
  end?: number
  full = false
  failed = false
  leases = 0
  readonly #frames: EventFrames[] = []
  /** the first reader to encode from this page */
  #first: object | undefined
  #shared = false

  constructor(user: string | undefined, after: number, log: EventLog) {
    this.user = user
    this.after = after
    this.head = log.head
    this.floor = log.floor
    this.events = user === undefined ? log.read(after, PAGE) : log.readUser(user, after, PAGE)
  }

  /**
   * The frames of `ev`, the page's `i`th event, for `reader`: encoded once for every reader of
   * the page, and kept with it once a second reader comes. A page one stream reads alone keeps
   * none: kept frames outlive the young generation, and a lone replay ran about a quarter slower.
   */
  framesAt(i: number, ev: HearthEvent, reader: object): EventFrames {
    if (!this.#shared) {
      this.#first ??= reader
      if (this.#first === reader) return new EventFrames(ev)
      this.#shared = true
    }
    return (this.#frames[i] ??= new EventFrames(ev))
  }

  /** This page has every event of its source in (after, end]: a reader at `cursor` can go on from it. */
  serves(user: string | undefined, cursor: number): boolean {
    if (this.user !== user || this.failed) return false
    if (this.end === undefined) return this.after === cursor && cursor < this.head // still being read
    return this.after <= cursor && cursor < this.end
  }
}

/** A page one reader holds: it gives it back, once, before it waits on its client. */
export class Lease {
  readonly page: Page
  #pages: LogPages | undefined

  constructor(pages: LogPages, page: Page) {
    this.#pages = pages
    this.page = page
    page.leases++
  }

  release(): void {
    this.#pages?.giveBack(this.page)
    this.#pages = undefined
  }
}

export interface PageStats {
  capacity: number
  /** pages counted now: being read, leased, or kept */
  held: number
  /** the most ever counted at once */
  peak: number
  /** reads started */
  reads: number
  /** leases served by a page already held, without a read */
  shared: number
  /** readers waiting for room */
  waiting: number
}

interface Waiter {
  user: string | undefined
  after: number
  resolve: (lease: Lease) => void
}

/**
 * The pages of the log that forward replays and catch-ups hold, shared by every stream and
 * never more than `capacity` at once: a page counts from the moment its read starts until no
 * reader holds it and it has been given up to make room. Readers at a cursor a held page
 * covers share it (one read, one decoded page, one encoding of each event); a page no reader
 * holds stays, most recently used last, until a new read needs its room. A reader that finds
 * no room waits its turn, first come first served.
 *
 * Nothing a client does keeps a page: a reader holds pages only while they are read and while
 * it writes their frames, and gives them back before it waits for its socket to drain. So a
 * page is never held longer than a read and the encoding of PAGE events, and the queue moves
 * however slow the clients are.
 */
export class LogPages {
  readonly capacity: number
  readonly #log: EventLog
  /** every page counted: being read, leased, or kept */
  readonly #pages = new Set<Page>()
  /** read pages no reader holds, least recently used first */
  readonly #kept = new Set<Page>()
  readonly #waiting: Waiter[] = []
  #peak = 0
  #reads = 0
  #shared = 0

  constructor(log: EventLog, capacity = PAGES_HELD) {
    this.#log = log
    this.capacity = capacity
  }

  stats(): PageStats {
    return { capacity: this.capacity, held: this.#pages.size, peak: this.#peak, reads: this.#reads, shared: this.#shared, waiting: this.#waiting.length }
  }

  /** The page after `after` (of `user`'s index, or of the whole log), once there is room for it. */
  lease(user: string | undefined, after: number): Promise<Lease> {
    const now = this.tryLease(user, after)
    if (now !== undefined) return Promise.resolve(now)
    return new Promise((resolve) => this.#waiting.push({ user, after, resolve }))
  }

  /** The same, now or not at all (a read ahead); never ahead of a reader that waits. */
  tryLease(user: string | undefined, after: number): Lease | undefined {
    return this.#share(user, after) ?? (this.#waiting.length === 0 ? this.#start(user, after) : undefined)
  }

  /** Called by `Lease.release`. */
  giveBack(page: Page): void {
    if (--page.leases > 0) return
    if (page.failed) this.#pages.delete(page)
    else if (page.end !== undefined) this.#kept.add(page)
    // a page still being read stays counted; it is kept once read (below)
    this.#serve()
  }

  #share(user: string | undefined, after: number): Lease | undefined {
    for (const page of this.#pages) {
      if (!page.serves(user, after)) continue
      this.#kept.delete(page) // held again; kept again, as the most recent, when given back
      this.#shared++
      return new Lease(this, page)
    }
    return undefined
  }

  #start(user: string | undefined, after: number): Lease | undefined {
    if (this.#pages.size >= this.capacity) {
      const oldest = this.#kept.values().next()
      if (oldest.done) return undefined
      this.#kept.delete(oldest.value)
      this.#pages.delete(oldest.value)
    }
    const page = new Page(user, after, this.#log)
    this.#pages.add(page)
    this.#peak = Math.max(this.#peak, this.#pages.size)
    this.#reads++
    page.events.then(
      (events) => {
        page.full = events.length === PAGE
        page.end = page.full ? events[PAGE - 1]!.seq : page.head
        if (page.leases === 0) this.#kept.add(page)
        this.#serve()
      },
      () => {
        page.failed = true
        if (page.leases === 0) this.#pages.delete(page)
        this.#serve()
      },
    )
    return new Lease(this, page)
  }

  /** Room was made, or a page was read: the readers waiting longest go first. */
  #serve(): void {
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0]!
      const lease = this.#share(next.user, next.after) ?? this.#start(next.user, next.after)
      if (lease === undefined) return
      this.#waiting.shift()
      next.resolve(lease)
    }
  }
}
