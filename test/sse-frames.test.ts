import t from 'tap'
import { FrameParser, framesIn, parseFrame, type SseFrame } from './helpers/sse-frames.js'

// The suite's one SSE parser: every reader in test/helpers splits frames with it, so what it
// gets wrong every feed test would get wrong on both sides. The server sends LF only; the
// grammar also allows CRLF and a lone CR, and a read may end anywhere, inside a line end or a
// UTF-8 character.

/** each a whole frame with its closing blank line, but the last */
const PIECES = [
  'id: 1\nevent: PUT\ndata: {"path":"/pub/é"}\n\n',
  ': keep-alive\n\n',
  'id: 2\r\nevent: DEL\r\ndata: a\r\ndata: b\r\n\r\n',
  'retry: 1000\rdata:no space\r\r',
  'data: 😀 after\n\n',
  'id: 3\ndata: cut',
]
const BODY = PIECES.join('')

function parseInPieces(bytes: Buffer, cuts: number[]): { frames: [SseFrame, number][]; rest: string } {
  const frames: [SseFrame, number][] = []
  const parser = new FrameParser((f, n) => frames.push([f, n]))
  let from = 0
  for (const cut of [...cuts, bytes.length]) {
    parser.push(bytes.subarray(from, cut))
    from = cut
  }
  return { frames, rest: parser.rest }
}

t.test('fields, comments, multi-line data and every line end', async (t) => {
  const { frames, rest } = parseInPieces(Buffer.from(BODY), [])
  t.same(
    frames.map(([f]) => ({ ...f, raw: undefined })),
    [
      { raw: undefined, id: '1', event: 'PUT', data: '{"path":"/pub/é"}' },
      { raw: undefined, comment: 'keep-alive' },
      { raw: undefined, id: '2', event: 'DEL', data: 'a\nb' },
      { raw: undefined, retry: '1000', data: 'no space' },
      { raw: undefined, data: '😀 after' },
    ],
  )
  t.same(frames.map(([, n]) => n), PIECES.slice(0, 5).map((p) => Buffer.byteLength(p)), 'sizes in bytes, the closing blank line included')
  t.equal(rest, 'id: 3\ndata: cut', 'an unfinished frame waits')
  t.same(parseFrame('data: x'), { raw: 'data: x', data: 'x' })
})

t.test('the same frames wherever the reads are cut, once or twice', async (t) => {
  const bytes = Buffer.from(BODY)
  const whole = JSON.stringify(parseInPieces(bytes, []))
  const differ: string[] = []
  for (let a = 1; a < bytes.length; a++) {
    if (JSON.stringify(parseInPieces(bytes, [a])) !== whole) differ.push(`${a}`)
    for (let b = a + 1; b < bytes.length; b += 7) if (JSON.stringify(parseInPieces(bytes, [a, b])) !== whole) differ.push(`${a},${b}`)
  }
  t.same(differ, [], `every cut of ${bytes.length} bytes gives the frames of the whole`)
  t.same(framesIn(BODY).length, 5)
})
