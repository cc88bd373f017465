import { createParser, type EventSourceParser } from 'eventsource-parser'
import { FollowProtocolError, logEventSchema, resetSchema, type LogEvent, type ResetInfo } from './events.js'
import { isToken, snapshotFrameSchema, syncedSchema, type SnapshotFile } from './snapshot.js'
import { RetryableError, type Position } from './stream.js'
import { seqOfId } from './id.js'

/** What one `/subscribe` stream says, in order. */
export type Item =
  | { kind: 'event'; seq: bigint; event: LogEvent }
  /** the server scanned up to `seq` without another match */
  | { kind: 'mark'; seq: bigint }
  | { kind: 'reset'; info: ResetInfo }
  /** a frame of a snapshot, before `synced` */
  | { kind: 'file'; file: SnapshotFile }
  /** the snapshot starts again from its first file */
  | { kind: 'restart'; info: ResetInfo }
  /** the snapshot is complete at `seq`; the events after it follow */
  | { kind: 'synced'; seq: bigint; files: number }

/**
 * Reads one response body chunk by chunk and turns it into items. It reads only when asked,
 * so a consumer that stops pulling stops the reading, and TCP pushes back to the server.
 */
export class FrameReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #decoder = new TextDecoder()
  readonly #parser: EventSourceParser
  readonly #out: Item[]
  readonly #maxFrame: number
  /** the position the stream was opened after, then the last one it named */
  #last: bigint
  /** the position before the current frame's id */
  #before: bigint
  /** in the snapshot part of a stream, where ids are resume tokens: the highest seq a frame named */
  #snapshot: { top: bigint } | undefined
  #oversized = false
  #broken: FollowProtocolError | undefined
  /** the server's `retry:` hint, ms */
  retryMs: number | undefined

  /**
   * `at`: where the stream was opened; every event must come after it and after the one
   * before, and a stream opened in a snapshot must send its frames, then `synced` at a seq no
   * lower than any of them. `maxFrame`: the most characters one frame may take; a longer one
   * (or a line that never ends) is a protocol error, not a buffer that grows.
   */
  constructor(body: ReadableStream<Uint8Array>, out: Item[], at: Position, maxFrame: number) {
    this.#reader = body.getReader()
    this.#out = out
    this.#last = this.#before = typeof at === 'bigint' ? at : 0n
    this.#snapshot = typeof at === 'bigint' ? undefined : { top: 0n }
    this.#maxFrame = maxFrame
    this.#parser = createParser({
      // in a snapshot, ids are tokens, each read with the frame it names
      onId: (id) => void (this.#snapshot === undefined && this.#mark(id)),
      onEvent: (msg) => this.#checked(msg.event, msg.id, msg.data),
      onRetry: (ms) => void (this.retryMs = ms),
      onError: (err) => void (err.type === 'max-buffer-size-exceeded' && (this.#oversized = true)),
      maxBufferSize: maxFrame,
    })
  }

  /**
   * Reads one chunk into the item list: true, or once the stream is over, why (it ended,
   * dropped, or went silent for `idleMs`).
   */
  async pump(idleMs: number): Promise<true | RetryableError> {
    // what came before a broken frame is handed out first; the next read reports the break
    if (this.#broken !== undefined) throw this.#broken
    let timer: ReturnType<typeof setTimeout> | undefined
    const idle = new Promise<'idle'>((resolve) => (timer = setTimeout(() => resolve('idle'), idleMs)))
    try {
      const chunk = await Promise.race([this.#reader.read(), idle])
      if (chunk === 'idle') return new RetryableError(`the stream sent nothing for ${idleMs} ms`)
      if (chunk.done) return new RetryableError('the stream ended')
      this.#parser.feed(this.#decoder.decode(chunk.value, { stream: true }))
      if (this.#oversized) throw new FollowProtocolError(`the stream sent a frame of more than ${this.#maxFrame} characters`)
      return true
    } catch (err) {
      if (err instanceof FollowProtocolError) {
        this.#broken = err
        return true
      }
      // a dropped connection: the caller reconnects from what was already read
      return new RetryableError(`the stream broke: ${(err as Error).message}`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
  }

  cancel(): void {
    this.#reader.cancel().catch(() => {})
  }

  #mark(id: string): void {
    const seq = seqOfId(id)
    if (seq === undefined) throw new FollowProtocolError(`the stream sent a malformed id: ${id}`)
    // a keepalive may name the position again; going back is a broken or hostile server
    if (seq < this.#last) throw new FollowProtocolError(`the stream went back from ${this.#last} to ${seq}`)
    this.#out.push({ kind: 'mark', seq })
    this.#before = this.#last
    this.#last = seq
  }

  /** A frame that breaks the protocol takes back the mark its id left, so no cursor passes it. */
  #checked(type: string | undefined, id: string | undefined, data: string): void {
    try {
      if (data.length > this.#maxFrame) throw new FollowProtocolError(`the stream sent a frame of more than ${this.#maxFrame} characters`)
      if (this.#snapshot !== undefined) this.#snapshotFrame(this.#snapshot, type, id, data)
      else this.#event(type, id, data)
    } catch (err) {
      const last = this.#out[this.#out.length - 1]
      if (id !== undefined && last?.kind === 'mark' && last.seq === seqOfId(id)) this.#out.pop()
      throw err
    }
  }

  #event(type: string | undefined, id: string | undefined, data: string): void {
    if (type === 'reset') {
      const { requested, floor } = parseData(resetSchema, data)
      // a reset moves forward, to the floor; one that would take the position back is broken
      if (BigInt(floor) - 1n < this.#last) throw new FollowProtocolError(`the stream sent a reset to floor ${floor}, behind position ${this.#last}`)
      this.#last = this.#before = BigInt(floor) - 1n
      this.#out.push({ kind: 'reset', info: { requested, floor } })
      return
    }
    if (type !== 'PUT' && type !== 'DEL') return // room for frame types this client does not know
    const event = parseData(logEventSchema, data)
    const seq = BigInt(event.seq)
    if (id !== event.id || seqOfId(event.id) !== seq) {
      throw new FollowProtocolError(`the stream sent an event whose id and seq disagree: ${data.slice(0, 200)}`)
    }
    // onId has just moved the position to this id: an event must lie beyond where it stood before
    if (seq <= this.#before) throw new FollowProtocolError(`the stream sent event ${seq} after position ${this.#before}`)
    // onId already recorded this frame's id as a bare mark; the event replaces it.
    const last = this.#out[this.#out.length - 1]
    if (last?.kind === 'mark' && last.seq === seq) this.#out.pop()
    this.#out.push({ kind: 'event', seq, event })
  }

  /** Before `synced`: frames under resume tokens, a restart, then `synced` under a plain id. */
  #snapshotFrame(snapshot: { top: bigint }, type: string | undefined, id: string | undefined, data: string): void {
    if (type === 'reset') {
      const { requested, floor, snapshot: restart } = parseData(resetSchema, data)
      if (restart !== 'restart') throw new FollowProtocolError(`the stream sent a reset in a snapshot that does not restart it: ${data.slice(0, 200)}`)
      snapshot.top = 0n
      this.#out.push({ kind: 'restart', info: { requested, floor } })
      return
    }
    if (type === 'synced') {
      const synced = parseData(syncedSchema, data)
      const seq = BigInt(synced.seq)
      if (id === undefined || seqOfId(id) !== seq) throw new FollowProtocolError(`the stream sent synced at ${seq} under the id ${id}`)
      // a frame above the position of `synced` would be a state the consumer keeps wrongly
      if (seq < snapshot.top) throw new FollowProtocolError(`the stream sent synced at ${seq}, below a snapshot frame at ${snapshot.top}`)
      this.#snapshot = undefined
      this.#last = this.#before = seq
      this.#out.push({ kind: 'synced', seq, files: synced.files })
      return
    }
    if (type !== 'PUT' && type !== 'DEL') return
    if (id === undefined || !isToken(id)) throw new FollowProtocolError(`the stream sent a snapshot frame without a resume token: ${id}`)
    const { snapshot: isFile, ...event } = parseData(snapshotFrameSchema, data)
    const seq = BigInt(event.seq)
    if (event.type !== type || seqOfId(event.id) !== seq || (isFile === true && type !== 'PUT')) {
      throw new FollowProtocolError(`the stream sent a malformed snapshot frame: ${data.slice(0, 200)}`)
    }
    if (seq > snapshot.top) snapshot.top = seq
    this.#out.push({ kind: 'file', file: { ...event, snapshot: isFile === true, cursor: id } })
  }
}

function parseData<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }, data: string): T {
  let parsed: ReturnType<typeof schema.safeParse> | undefined
  try {
    parsed = schema.safeParse(JSON.parse(data))
  } catch {
    parsed = undefined
  }
  if (!parsed?.success) throw new FollowProtocolError(`the stream sent a malformed frame: ${data.slice(0, 200)}`)
  return parsed.data
}
