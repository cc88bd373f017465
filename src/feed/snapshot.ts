import type { EventLog } from '../events/event-log.js'
import { dataOf } from '../events/stored.js'
import { fileKey, type KeyRange, type ReadView } from '../kv/store.js'
import type { Filter } from '../subscriptions/filter.js'
import type { LogPages } from './pages.js'
import { LogReader, type ReadSpec } from './reader.js'
import { SnapshotPlan } from './snapshot-plan.js'
import { encodeToken, eventFrame, fileFrame, syncedFrame, type SnapshotToken } from './snapshot-frames.js'
import type { SseStream } from './sse.js'
import { publicOnly } from './visibility.js'
import { SUBSCRIBE } from './wire.js'

/** Files read per page of a snapshot. */
export const SNAPSHOT_PAGE = 256

/**
 * How long one read view may serve a snapshot before the rest is read in a newer one: a view
 * holds back LevelDB's compactions, and on PostgreSQL a connection and the vacuum.
 */
export const VIEW_MAX_MS = 30_000

/**
 * How long a held view waits for a backed-up client before it gives its place back. A client
 * that keeps up takes a page's frames well within it; one that does not is not waited for
 * while holding a view. Giving the view up at every backed-up page instead opened thousands of
 * views for one fast client's million files, and on LevelDB each closed iterator keeps its
 * last native page until V8 collects its handle: the server grew by 120 MB more.
 */
export const VIEW_WAIT_MS = 500

/** Read views held across pages at once, per process; a snapshot beyond them reads each page in a view of its own. */
export const HELD_VIEWS = 4

export interface SnapshotSpec extends ReadSpec {
  filters: readonly Filter[]
  /** where the stream a reconnect comes from got to */
  resume?: SnapshotToken
}

/** The views held across pages, shared by every snapshot of a process. */
export class HeldViews {
  #held = 0
  constructor(readonly most = HELD_VIEWS) {}
  take(): boolean {
    if (this.#held >= this.most) return false
    this.#held++
    return true
  }
  give(): void {
    this.#held--
  }
}

/**
 * The first part of a snapshot stream (SPEC §13): every file its filters cover that it may see,
 * in key order, as of position P (the head of the read view it opens); then, if any of it had
 * to be read at a later position Q, the events of (P, Q]; then `synced` at the position it
 * reached. Resolves with that position, from which the stream goes on as `/subscribe` does.
 *
 * One position or several: the files are read through one view while the client keeps up, so
 * they are the state at P and `synced` comes at P. When the socket stays backed up longer than
 * VIEW_WAIT_MS, the view gives its place back while the client is waited for (a view is not
 * held for a slow client), and the files after the last one sent are read in a new view at
 * Q ≥ P, the same as when a client reconnects with a token: the events of (P, Q] then follow
 * before `synced` at Q or later, so a client that keeps, per path, the frame with the highest
 * seq holds exactly the files at the `synced` position. Both hold on either engine. When the
 * log no longer holds the events after P, the snapshot starts again: `event: reset` tells the
 * client to forget what this stream sent.
 *
 * Memory: one page of files and its frames, and the socket's HIGH_WATER.
 */
export class SnapshotStream {
  readonly #events: EventLog
  readonly #pages: LogPages
  readonly #stream: SseStream
  readonly #spec: SnapshotSpec
  readonly #plan: SnapshotPlan
  readonly #held: HeldViews
  #files = 0

  constructor(events: EventLog, pages: LogPages, stream: SseStream, spec: SnapshotSpec, held: HeldViews) {
    this.#events = events
    this.#pages = pages
    this.#stream = stream
    this.#spec = spec
    this.#held = held
    this.#plan = new SnapshotPlan(spec.filters, spec.canSee === publicOnly)
  }

  /** Runs to `synced`; resolves with its position, or undefined when the client left first. */
  async run(): Promise<number | undefined> {
    let token = this.#spec.resume
    for (;;) {
      const at = token?.kind === 'events' ? { at: token.at, upTo: token.upTo } : await this.#sendFiles(token)
      if (at === undefined) return undefined
      const from = token?.kind === 'events' ? token.after : at.at
      const synced = await this.#sendEvents(at.at, at.upTo, from)
      if (synced === 'gone') return undefined
      if (synced !== 'pruned') {
        this.#stream.write(syncedFrame(synced, this.#files))
        return synced
      }
      token = undefined // the events lost what the snapshot needs: a new one, from scratch
      this.#files = 0
    }
  }

  /**
   * The files, after the token's key if any; resolves with the positions they were read at.
   * Frames are written SNAPSHOT_PAGE visible files at a time, and tokens name only files sent,
   * so neither a write's size nor an id tells anything of a file the stream may not see.
   */
  async #sendFiles(token: SnapshotToken | undefined): Promise<{ at: number; upTo: number } | undefined> {
    let sent = token?.kind === 'files' ? token.after : undefined
    let read = sent
    let view = await this.#open()
    const at = token?.kind === 'files' ? token.at : view.view.head
    let upTo = view.view.head
    let text = ''
    let queued = 0
    const flush = () => {
      if (text !== '') this.#stream.write(text)
      text = ''
      queued = 0
    }
    try {
      for (;;) {
        let moved = false
        for await (const range of this.#plan.ranges(view.view, read)) {
          for (let r: KeyRange = range; ;) {
            const files = await view.view.files(r, SNAPSHOT_PAGE)
            if (this.#stream.closed) return undefined
            for (const file of files) {
              read = fileKey(file.user, file.path)
              if (!this.#spec.canSee(file)) continue
              sent = read
              text += fileFrame(file, file.meta.seq ?? view.view.head, encodeToken({ kind: 'files', at, after: sent }))
              this.#files++
              if (++queued === SNAPSHOT_PAGE) flush()
            }
            if (files.length < SNAPSHOT_PAGE) break
            r = { gt: read!, ...(range.lt !== undefined ? { lt: range.lt } : { lte: range.lte }) }
            if (await view.mustMove()) {
              // the rest in a newer view, once the client has taken what it was sent
              flush()
              await view.close()
              await this.#stream.drained()
              if (this.#stream.closed) return undefined
              view = await this.#open()
              upTo = view.view.head
              moved = true
              break
            }
          }
          if (moved) break
        }
        if (!moved) {
          flush()
          return { at, upTo }
        }
      }
    } finally {
      await view.close()
    }
  }

  /**
   * The events of (from, upTo] the stream may see, under tokens; resolves with the position
   * reached (≥ upTo), 'pruned' when the log no longer holds them, 'gone' when the client left.
   */
  async #sendEvents(at: number, upTo: number, from: number): Promise<number | 'pruned' | 'gone'> {
    if (from >= upTo) return from
    // another instance's commits up to upTo are read into this process's log first
    if (this.#events.head < upTo) await this.#events.catchUp()
    const reader = new LogReader(this.#events, this.#pages, { ...this.#spec, after: from })
    let pruned = false
    try {
      while (reader.cursor < upTo) {
        let text = ''
        await reader.step({
          reset: (requested, floor) => {
            pruned = true
            reader.close()
            text += `event: reset\ndata: ${JSON.stringify({ requested: String(requested), floor: String(floor), snapshot: 'restart' })}\n\n`
          },
          event: (ev) => {
            if (pruned) return false
            text += eventFrame(dataOf(ev), ev.type, encodeToken({ kind: 'events', at, upTo, after: ev.seq }))
            return true
          },
        })
        if (text !== '') this.#stream.write(text)
        if (pruned) return 'pruned'
        if (this.#stream.closed) return 'gone'
        if (this.#stream.backedUp) {
          reader.pause()
          await this.#stream.drained()
          if (this.#stream.closed) return 'gone'
        }
        if (reader.caughtUp && reader.cursor < upTo) await this.#events.catchUp()
      }
      return reader.cursor
    } finally {
      reader.close()
    }
  }

  /** A read view, held across pages while this process holds fewer than HELD_VIEWS. */
  async #open(): Promise<OpenView> {
    const held = this.#held.take()
    try {
      return new OpenView(await this.#events.readView(), held ? () => this.#held.give() : undefined, this.#stream)
    } catch (err) {
      if (held) this.#held.give()
      throw err
    }
  }
}

/** A view in use by one snapshot, and when it must give its place to a newer one. */
class OpenView {
  readonly view: ReadView
  readonly #release: (() => void) | undefined
  readonly #stream: SseStream
  readonly #opened = performance.now()
  #closed = false

  constructor(view: ReadView, release: (() => void) | undefined, stream: SseStream) {
    this.view = view
    this.#release = release
    this.#stream = stream
  }

  /**
   * Not held (each page in a view of its own), open too long, or the socket backed up and not
   * drained within VIEW_WAIT_MS.
   */
  async mustMove(): Promise<boolean> {
    if (this.#release === undefined || performance.now() - this.#opened > VIEW_MAX_MS) return true
    return this.#stream.backedUp && !(await this.#stream.drainedWithin(VIEW_WAIT_MS))
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    try {
      await this.view.close()
    } finally {
      this.#release?.()
    }
  }
}
