import { parseCursor } from 'hearth-homeserver-client/id'
import { backoffDelay, sleep } from 'hearth-homeserver-client/backoff'
import type { LogEvent } from 'hearth-homeserver-client'

/**
 * One event as `/subscribe` sends it (SPEC §6.3): the client's own type (a type only, erased);
 * `snapshot`: a file as it is, sent by a snapshot (SPEC §13).
 */
export type FeedEvent = LogEvent & { snapshot?: boolean }

export type FeedState = 'connecting' | 'open' | 'reconnecting' | 'stopped' | 'refused'

export interface FeedHandlers {
  event(ev: FeedEvent): void
  /** every position the stream carried, with data or without: the seq read up to */
  position(seq: bigint): void
  reset(requested: string, floor: string): void
  /** a snapshot is complete at `seq`: the events after it follow */
  synced(seq: string, files: number): void
  /** the homeserver starts the snapshot again: what it sent so far is to be forgotten */
  restart(requested: string, floor: string): void
  state(state: FeedState, detail?: string): void
}

const MAX_DELAY_MS = 10_000

/**
 * Where a feed starts: after a position (an id or a decimal seq, exclusive), with the newest
 * `recent` matches, or with a snapshot of the files.
 */
export type Start = { after: string } | { recent: number } | { snapshot: true }

/**
 * One `/subscribe` stream, read with fetch and resumed after every disconnect with
 * `Last-Event-ID` set to the last id it carried, so no row is lost or shown twice across a
 * dropped connection, a pause or a server restart. It starts after a position, or with the
 * newest matches (`recent=`), whose ids then carry it on like any others, or with a snapshot,
 * whose resume tokens carry it through a reconnect in the middle. Not EventSource: it hides the id-only
 * frames (the position a filtered stream scanned to, which the lag needs) and the error body
 * of a refused filter, and gives up for good on a 5xx.
 */
export class Feed {
  readonly filter: string
  readonly #on: FeedHandlers
  /** the last position the stream carried; until there is one, the start asks for the newest `#recent` */
  #position: string | undefined
  readonly #recent: number | undefined
  readonly #snapshot: boolean
  #retryMs = 2000
  #failures = 0
  /** bumped by start() and stop(): a loop from an older run ends at its next step */
  #run = 0
  #abort: AbortController | undefined

  constructor(filter: string, start: Start, on: FeedHandlers) {
    this.filter = filter
    if ('after' in start) this.#position = start.after
    else if ('recent' in start) this.#recent = start.recent
    this.#snapshot = 'snapshot' in start
    this.#on = on
  }

  get running(): boolean {
    return this.#abort !== undefined
  }

  start(): void {
    if (this.running) return
    void this.#loop(++this.#run)
  }

  stop(): void {
    this.#run++
    this.#abort?.abort()
    this.#abort = undefined
    this.#on.state('stopped')
  }

  async #loop(run: number): Promise<void> {
    const abort = (this.#abort = new AbortController())
    this.#on.state('connecting')
    while (run === this.#run) {
      let refused = false
      try {
        refused = await this.#connect(abort.signal)
      } catch (err) {
        if (run !== this.#run) return
        this.#on.state('reconnecting', err instanceof Error ? err.message : String(err))
      }
      if (run !== this.#run) return
      if (refused) {
        this.#abort = undefined
        return
      }
      this.#failures++
      this.#on.state('reconnecting')
      // the server's `retry:` hint, doubling; one page's reconnects need no jitter
      await sleep(backoffDelay({ baseMs: this.#retryMs, maxMs: MAX_DELAY_MS, jitter: 0 }, this.#failures - 1), abort.signal)
    }
  }

  /** One connection, read to its end. True when the server refused it for good (a 4xx). */
  async #connect(signal: AbortSignal): Promise<boolean> {
    const params = new URLSearchParams()
    if (this.filter !== '') params.set('filter', this.filter)
    // after `synced` the position is a plain id, and the server resumes live after it
    if (this.#snapshot) params.set('snapshot', 'true')
    const headers: Record<string, string> = { accept: 'text/event-stream' }
    // the server ignores `recent` once there is a position: it resumes right after it
    if (this.#position !== undefined) headers['last-event-id'] = this.#position
    else if (this.#recent !== undefined) params.set('recent', String(this.#recent))
    const query = params.toString()
    const res = await fetch(query === '' ? '/subscribe' : `/subscribe?${query}`, {
      headers,
      cache: 'no-store',
      signal,
    })
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { message?: string }
      const message = body.message ?? `${res.status} ${res.statusText}`
      // 408 and 429 pass with time; any other 4xx will be refused again, so it is final.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        this.#on.state('refused', message)
        return true
      }
      throw new Error(message)
    }
    this.#failures = 0
    this.#on.state('open')
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
    let pending = ''
    let frame: Record<string, string> = {}
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return false
      pending += value
      let nl: number
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl).replace(/\r$/, '')
        pending = pending.slice(nl + 1)
        if (line === '') {
          this.#dispatch(frame)
          frame = {}
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':')
          const name = colon === -1 ? line : line.slice(0, colon)
          const text = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
          frame[name] = name === 'data' && frame.data !== undefined ? `${frame.data}\n${text}` : text
        }
      }
    }
  }

  #dispatch(frame: Record<string, string>): void {
    if (frame.retry !== undefined && /^\d+$/.test(frame.retry)) this.#retryMs = Number(frame.retry)
    if (frame.data !== undefined) {
      if (frame.event === 'PUT' || frame.event === 'DEL') this.#on.event(JSON.parse(frame.data) as FeedEvent)
      else if (frame.event === 'synced') {
        const s = JSON.parse(frame.data) as { seq: string; files: number }
        this.#on.synced(s.seq, s.files)
      } else if (frame.event === 'reset') {
        const r = JSON.parse(frame.data) as { requested: string; floor: string; snapshot?: string }
        if (r.snapshot === 'restart') this.#on.restart(r.requested, r.floor)
        else this.#on.reset(r.requested, r.floor)
      }
    }
    // The id moves last: an event is counted as received once it has been handed over. A
    // snapshot's resume token is a place to resume from, not a position in the log.
    if (frame.id?.startsWith('~')) this.#position = frame.id
    const seq = frame.id === undefined ? undefined : parseCursor(frame.id)
    if (seq !== undefined) {
      this.#position = frame.id!
      this.#on.position(seq)
    }
  }
}
