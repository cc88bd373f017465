import { StringDecoder } from 'node:string_decoder'

/**
 * One SSE frame as sent. `raw` is its text up to the blank line that ends it; fields by
 * name, `data` lines joined by `\n`; `comment` is the text of its (last) comment line.
 */
export interface SseFrame {
  raw: string
  id?: string
  event?: string
  data?: string
  retry?: string
  comment?: string
}

/** A line ends at CRLF, LF or CR; a lone CR is one only when no LF follows it. */
const LINE_END = /\r\n|\r|\n/
/** A line end and then an empty line: the end of a frame. */
const FRAME_END = /(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)/g

/** The fields of one frame's text (without its closing blank line), as the SSE grammar reads them. */
export function parseFrame(raw: string): SseFrame {
  const frame: SseFrame = { raw }
  for (const line of raw.includes('\r') ? raw.split(LINE_END) : raw.split('\n')) {
    if (line === '') continue
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    const value = colon === -1 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1))
    if (field === '') frame.comment = value
    else if (field === 'data') frame.data = frame.data === undefined ? value : `${frame.data}\n${value}`
    else if (field === 'id' || field === 'event' || field === 'retry') frame[field] = value
  }
  return frame
}

/**
 * Splits an SSE body into frames as it arrives, in pieces of text or of bytes (UTF-8, a
 * character may straddle two pieces). Each complete frame goes to `onFrame` with its size in
 * bytes, closing blank line included; text after the last complete frame waits in `rest`.
 */
export class FrameParser {
  readonly #onFrame: (frame: SseFrame, bytes: number) => void
  readonly #decoder = new StringDecoder('utf8')
  #pending = ''
  /** where the search for the next frame end resumes: an end may straddle two pieces */
  #scanFrom = 0

  constructor(onFrame: (frame: SseFrame, bytes: number) => void) {
    this.#onFrame = onFrame
  }

  push(piece: string | Uint8Array): void {
    this.#pending += typeof piece === 'string' ? piece : this.#decoder.write(piece)
    const text = this.#pending
    // without a CR the only frame end is LF LF, found much faster than by the pattern
    const lfOnly = !text.includes('\r')
    let start = 0
    for (let from = this.#scanFrom; ; ) {
      let at: number
      let length: number
      if (lfOnly) {
        at = text.indexOf('\n\n', from)
        length = 2
      } else {
        FRAME_END.lastIndex = from
        const m = FRAME_END.exec(text)
        at = m === null ? -1 : m.index
        length = m === null ? 0 : m[0].length
      }
      // a CR last in the text may be the first half of a CRLF still to come
      if (at === -1 || (at + length === text.length && text[text.length - 1] === '\r')) break
      const raw = text.slice(start, at)
      start = from = at + length
      this.#onFrame(parseFrame(raw), Buffer.byteLength(raw) + length)
    }
    this.#pending = text.slice(start)
    this.#scanFrom = Math.max(0, this.#pending.length - 3)
  }

  /** Text after the last complete frame: the whole body of an answer that is not a stream. */
  get rest(): string {
    return this.#pending
  }
}

/** The complete frames of a whole SSE body. */
export function framesIn(body: string): SseFrame[] {
  const frames: SseFrame[] = []
  new FrameParser((f) => frames.push(f)).push(body)
  return frames
}
