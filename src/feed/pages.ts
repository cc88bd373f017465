import type { HearthEvent } from '../events/event.js'
import type { EventLog } from '../events/event-log.js'
import { MAX_STORED_CHARS, StoredEvent } from '../events/stored.js'
import { EventFrames } from './frames.js'
import type { WireFormat } from './wire.js'

/** Events read from the log per page of a replay or catch-up. */
export const PAGE = 256

/**
 * Bytes the pages forward replays of all streams hold together may count at once: their
 * events, and the frames kept with them, as `eventBytes` and `frameBytes` count them.
 */
export const PAGE_BYTES_HELD = 32 * 1024 * 1024

/**
 * Bytes of read pages that no reader holds which the pool keeps while at most one stream reads
 * the log: enough for a lone reader to find the page it gave back before waiting on its client,
 * few enough that the pages it has passed die young rather than fill old space.
 */
export const LONE_KEPT_BYTES = 2 * 1024 * 1024

/** What an event counts besides the characters of its strings: the object, its numbers, its slot in the page. */
const EVENT_OVERHEAD = 160

/**
 * What a page counts while it is read, before its size is known: PAGE of the largest events a
 * write here can make (`MAX_STORED_CHARS`). Once read it counts its events instead, and that
 * is less unless a relay's upstream sent longer paths than it accepts.
 */
export const READ_RESERVE = PAGE * (EVENT_OVERHEAD + MAX_STORED_CHARS)

/**
 * An event's share of a page's bytes: the strings it keeps alive, a byte per character, which
 * is what V8 stores for ASCII, as paths nearly always are (one with a character past U+00FF
 * takes two). An event read from storage keeps its whole stored text, of which its fields and
 * its data JSON are slices; an event in the earlier layout, parsed from its JSON, its fields.
 */
export function eventBytes(ev: HearthEvent): number {
  if (ev instanceof StoredEvent) return EVENT_OVERHEAD + ev.storedLength
  return EVENT_OVERHEAD + ev.user.length + ev.path.length + (ev.contentHash?.length ?? 0) + (ev.homeserver?.length ?? 0)
}

/** What a kept frame counts besides its bytes: the Buffer object that holds them. */
const BUFFER_OVERHEAD = 96

/** A kept frame's bytes: its UTF-8 bytes and the Buffer that holds them. */
export function frameBytes(frame: Buffer): number {
  return BUFFER_OVERHEAD + frame.length
}

/**
 * Where a page reads: the whole log (no user), or one user's index — all of it, or only the
 * events whose path starts with `under`, so that a stream that may not see the rest never
 * reads it (what it writes, and when, then depends on nothing it may not see).
 */
export interface Source {
  user?: string
  under?: string
}

const sameSource = (a: Source, b: Source): boolean => a.user === b.user && a.under === b.under

/**
 * Events after `after`, oldest first, read from the whole log or from one user's index, as the
 * log stood when the read started (`head`; `floor` from the read's own snapshot, once read). A full page (PAGE events) holds every event
 * up to its last; a short one holds every event up to `head`.
 */
export class Page {
  readonly source: Source
  readonly after: number
  readonly head: number
  /** set once read: the floor as the read's snapshot of storage saw it */
  floor = 1
  readonly events: Promise<HearthEvent[]>
  /** set once read: the highest seq this page speaks for */
  end?: number
  full = false
  failed = false
  leases = 0
  /** what the page counts against its pool: READ_RESERVE while read, then its events and kept frames */
  bytes = READ_RESERVE
  /** the part of `bytes` that is kept frames, which can be let go without losing the page */
  frameBytes = 0
  /** its neighbours in its pool's kept pages, while it is one (see `KeptPages`) */
  keptBefore: Page | undefined
  keptAfter: Page | undefined
  isKept = false
  /** frames kept for the readers that share this page, per wire format, encoded when first asked */
  #frames = new Map<WireFormat, Buffer[]>()
  readonly #room: (page: Page, bytes: number) => boolean
  /** the first reader to encode from this page */
  #first: object | undefined
  #shared = false

  /** `room` counts `bytes` more for this page against its pool, or says there is no room for them. */
  constructor(source: Source, after: number, events: EventLog, room: (page: Page, bytes: number) => boolean) {
    this.source = source
    this.after = after
    this.head = events.head
    this.#room = room
    const read = source.user === undefined ? events.read(after, PAGE) : events.readUser(source.user, after, PAGE, source.under)
    this.events = read.then((r) => {
      this.floor = r.floor
      return r.events
    })
  }

  /**
   * The `wire` frame of `ev`, the page's `i`th event, for `reader`: encoded once for every
   * reader of the page, and kept with it once a second reader comes, if the pool has room for
   * it (if not, each reader encodes its own). A page one stream reads alone keeps
   * none: kept frames outlive the young generation, and a lone replay ran about a quarter
   * slower. Kept frames are Buffers, which readers write as they are: a thousand streams
   * reading one page then hold its bytes once between them, in their sockets too, where text
   * would be copied into each stream's batch and again into each socket's. A frame that is not
   * kept is text: the socket copies it into memory it frees once the write is done, where a
   * Buffer of each would stay, outside the heap, until the garbage collector finds it.
   */
  frameAt(i: number, ev: HearthEvent, wire: WireFormat, reader: object): string | Buffer {
    if (!this.#shared) {
      this.#first ??= reader
      if (this.#first === reader) return wire.text(new EventFrames(ev))
      this.#shared = true
    }
    const kept = this.#frames.get(wire) ?? this.#frames.set(wire, []).get(wire)!
    const known = kept[i]
    if (known !== undefined) return known
    const frames = new EventFrames(ev)
    const text = wire.text(frames)
    const bytes = BUFFER_OVERHEAD + Buffer.byteLength(text) // what `frameBytes` counts of its Buffer
    if (!this.#room(this, bytes)) return text
    const frame = wire.bytes(frames)
    kept[i] = frame
    this.frameBytes += bytes
    return frame
  }

  /** Lets the kept frames go; returns the bytes they counted. Readers encode them again if asked. */
  dropFrames(): number {
    const freed = this.frameBytes
    this.#frames = new Map()
    this.frameBytes = 0
    this.bytes -= freed
    return freed
  }

  /** This page has every event of its source in (after, end]: a reader at `cursor` can go on from it. */
  serves(source: Source, cursor: number): boolean {
    if (!sameSource(this.source, source) || this.failed) return false
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
  /** the bytes the held pages may count at once */
  budget: number
  /** bytes counted now: pages being read (READ_RESERVE each), and the events and kept frames of the rest */
  bytes: number
  /** the most bytes ever counted at once */
  peakBytes: number
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
  source: Source
  after: number
  resolve: (lease: Lease) => void
}

/**
 * Read pages no reader holds, least recently used first: a list through the pages themselves.
 * A page moves in and out of it each time a reader leases and gives it back, which a thousand
 * readers sharing the pool do thousands of times a second. A Set did the same by appending and
 * leaving holes, so it rebuilt its table again and again; each table lived long enough to be
 * promoted, and those tables were a third of what a thousand resuming readers left in V8's old
 * space. Linking the pages allocates nothing.
 */
class KeptPages {
  #first: Page | undefined
  #last: Page | undefined

  /** Appends `page` as the most recently used; a page already in the list stays where it is. */
  add(page: Page): void {
    if (page.isKept) return
    page.isKept = true
    page.keptBefore = this.#last
    page.keptAfter = undefined
    if (this.#last === undefined) this.#first = page
    else this.#last.keptAfter = page
    this.#last = page
  }

  delete(page: Page): void {
    if (!page.isKept) return
    page.isKept = false
    if (page.keptBefore === undefined) this.#first = page.keptAfter
    else page.keptBefore.keptAfter = page.keptAfter
    if (page.keptAfter === undefined) this.#last = page.keptBefore
    else page.keptAfter.keptBefore = page.keptBefore
    page.keptBefore = page.keptAfter = undefined
  }

  /** Least recently used first; `delete` of the page just given is safe. */
  *[Symbol.iterator](): Generator<Page> {
    for (let page = this.#first; page !== undefined; ) {
      const next = page.keptAfter
      yield page
      page = next
    }
  }
}

/**
 * The pages of the log that forward replays and catch-ups hold, shared by every stream and
 * never counting more than `budget` bytes at once: a page counts from the moment its read
 * starts (READ_RESERVE, as its size is not known yet; then its events, as `eventBytes` counts
 * them, and the frames kept with it) until no reader holds it and it has been given up to make
 * room. Readers at a cursor a held page covers share it (one read, one decoded page, one
 * encoding of each event); a page no reader holds stays, most recently used last, until a new
 * read needs its room: the kept frames of such pages go first, then the pages themselves.
 * While at most one stream reads the log (`readers`), no other reader will come back for a page
 * it passed, so only the most recent LONE_KEPT_BYTES of such pages stay (and always the last
 * one given back). A
 * reader that finds no room waits its turn, first come first served. A frame is kept only if
 * it fits; otherwise each reader encodes its own, which it holds only until it is written.
 *
 * Nothing a client does keeps a page: a reader holds pages only while they are read and while
 * it writes their frames, and gives them back before it waits for its socket to drain. So a
 * page is never held longer than a read and the encoding of PAGE events, and the queue moves
 * however slow the clients are.
 *
 * The count stays within the budget unless a read brings more than READ_RESERVE (only a relay
 * whose upstream sent paths longer than this server accepts can); no read starts until it is
 * back within.
 */
export class LogPages {
  readonly budget: number
  readonly #events: EventLog
  /** every page counted: being read, leased, or kept */
  readonly #pages = new Set<Page>()
  /** read pages no reader holds, least recently used first */
  readonly #kept = new KeptPages()
  readonly #waiting: Waiter[] = []
  #bytes = 0
  #peakBytes = 0
  #peak = 0
  #reads = 0
  #shared = 0
  /** how many streams read the log now, as the caller counts them (the feed: its replays and catch-ups) */
  readonly #readers: () => number

  constructor(events: EventLog, budget = PAGE_BYTES_HELD, readers: () => number = () => Infinity) {
    if (budget < READ_RESERVE) throw new RangeError(`a page pool of ${budget} bytes has no room for one read (${READ_RESERVE} bytes)`)
    this.#events = events
    this.budget = budget
    this.#readers = readers
  }

  stats(): PageStats {
    return {
      budget: this.budget, bytes: this.#bytes, peakBytes: this.#peakBytes,
      held: this.#pages.size, peak: this.#peak, reads: this.#reads, shared: this.#shared, waiting: this.#waiting.length,
    }
  }

  /** The page after `after` of `source`, once there is room for it. */
  lease(source: Source, after: number): Promise<Lease> {
    const now = this.tryLease(source, after)
    if (now !== undefined) return Promise.resolve(now)
    return new Promise((resolve) => this.#waiting.push({ source, after, resolve }))
  }

  /** The same, now or not at all (a read ahead); never ahead of a reader that waits. */
  tryLease(source: Source, after: number): Lease | undefined {
    return this.#share(source, after) ?? (this.#waiting.length === 0 ? this.#start(source, after) : undefined)
  }

  /** Called by `Lease.release`. */
  giveBack(page: Page): void {
    if (--page.leases > 0) return
    if (page.failed) this.#forget(page)
    else if (page.end !== undefined) {
      this.#kept.add(page)
      if (this.#readers() <= 1) this.#keepLone(page)
    }
    // a page still being read stays counted; it is kept once read (below)
    this.#serve()
  }

  /**
   * Forgets the least recently used pages no reader holds until LONE_KEPT_BYTES of them remain,
   * or only `last` (the page just given back, which its reader may come back to) does.
   */
  #keepLone(last: Page): void {
    let kept = 0
    for (const page of this.#kept) kept += page.bytes
    for (const page of this.#kept) {
      if (kept <= LONE_KEPT_BYTES || page === last) return
      kept -= page.bytes
      this.#forget(page)
    }
  }

  #share(source: Source, after: number): Lease | undefined {
    for (const page of this.#pages) {
      if (!page.serves(source, after)) continue
      this.#kept.delete(page) // held again; kept again, as the most recent, when given back
      this.#shared++
      return new Lease(this, page)
    }
    return undefined
  }

  #start(source: Source, after: number): Lease | undefined {
    if (!this.#makeRoom(READ_RESERVE)) return undefined
    const page = new Page(source, after, this.#events, (p, bytes) => this.#room(p, bytes))
    this.#pages.add(page)
    this.#count(page.bytes)
    this.#peak = Math.max(this.#peak, this.#pages.size)
    this.#reads++
    page.events.then(
      (events) => {
        page.full = events.length === PAGE
        page.end = page.full ? events[PAGE - 1]!.seq : page.head
        let bytes = 0
        for (const ev of events) bytes += eventBytes(ev)
        this.#count(bytes - page.bytes) // the reservation becomes what was read
        page.bytes = bytes
        if (page.leases === 0) this.#kept.add(page)
        this.#serve()
      },
      () => {
        page.failed = true
        if (page.leases === 0) this.#forget(page)
        this.#serve()
      },
    )
    return new Lease(this, page)
  }

  /** Frames to keep with a page: counted if they fit, never by giving up a page for them. */
  #room(page: Page, bytes: number): boolean {
    if (!this.#pages.has(page) || this.#bytes + bytes > this.budget) return false
    page.bytes += bytes
    this.#count(bytes)
    return true
  }

  /** Lets kept frames go, then kept pages, least recently used first, until `bytes` more fit. */
  #makeRoom(bytes: number): boolean {
    for (const page of this.#kept) {
      if (this.#bytes + bytes <= this.budget) return true
      if (page.frameBytes > 0) this.#count(-page.dropFrames())
    }
    for (const page of this.#kept) {
      if (this.#bytes + bytes <= this.budget) return true
      this.#forget(page)
    }
    return this.#bytes + bytes <= this.budget
  }

  #forget(page: Page): void {
    this.#kept.delete(page)
    if (this.#pages.delete(page)) this.#count(-page.bytes)
  }

  #count(bytes: number): void {
    this.#bytes += bytes
    this.#peakBytes = Math.max(this.#peakBytes, this.#bytes)
  }

  /** Room was made, or a page was read: the readers waiting longest go first. */
  #serve(): void {
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0]!
      const lease = this.#share(next.source, next.after) ?? this.#start(next.source, next.after)
      if (lease === undefined) return
      this.#waiting.shift()
      next.resolve(lease)
    }
  }
}
