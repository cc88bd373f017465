import t from 'tap'
import type { HearthEvent } from '../src/events/event.js'
import {
  EventFrames,
  KEEPALIVE_FRAME,
  RETRY_FRAME,
  UPSTREAM_KEEPALIVE_FRAME,
  framesOf,
  idFrame,
  resetFrame,
} from '../src/feed/frames.js'

const user = 'o1gg96ewuojmopcjbz8895478wdtxtzzuxnfjjz8o8e77csa1ngo'
const hash = 'r0NJufX5oaagQE3qNtzJSZvLJcmtwRK3zJqTyuQfMmI='
const put: HearthEvent = { seq: 42, type: 'PUT', user, path: '/pub/file.txt', contentHash: hash, size: 12, ts: 1763790000000 }
const del: HearthEvent = { seq: 43, type: 'DEL', user, path: '/pub/file.txt', ts: 1763790000001 }

t.test('/subscribe frames', async (t) => {
  t.equal(
    framesOf(put).subscribe.toString(),
    'id: 000000000002M\n' +
      'event: PUT\n' +
      `data: {"id":"000000000002M","seq":"42","type":"PUT","user":"${user}","path":"/pub/file.txt",` +
      `"uri":"pubky://${user}/pub/file.txt","contentHash":"${hash}","size":12,"ts":1763790000000}\n\n`,
  )
  t.equal(
    framesOf(del).subscribe.toString(),
    'id: 000000000002P\n' +
      'event: DEL\n' +
      `data: {"id":"000000000002P","seq":"43","type":"DEL","user":"${user}","path":"/pub/file.txt",` +
      `"uri":"pubky://${user}/pub/file.txt","ts":1763790000001}\n\n`,
  )
})

t.test('a relayed event names its origin last, and is otherwise the same frame', async (t) => {
  const relayed: HearthEvent = { ...put, homeserver: 'h'.repeat(52), originSeq: 9007 }
  const text = framesOf(relayed).subscribe.toString()
  t.equal(text, framesOf(put).subscribe.toString().replace('}\n\n', `,"homeserver":"${'h'.repeat(52)}","originSeq":"9007"}\n\n`))
  t.same(JSON.parse(text.split('data: ')[1]!), { ...JSON.parse(framesOf(put).subscribe.toString().split('data: ')[1]!), homeserver: 'h'.repeat(52), originSeq: '9007' })
})

t.test('/events-stream frames: upstream bytes, then id', async (t) => {
  t.equal(
    framesOf(put).eventsStream.toString(),
    `event: PUT\ndata: pubky://${user}/pub/file.txt\ndata: cursor: 42\ndata: content_hash: ${hash}\nid: 42\n\n`,
  )
  t.equal(framesOf(del).eventsStream.toString(), `event: DEL\ndata: pubky://${user}/pub/file.txt\ndata: cursor: 43\nid: 43\n\n`)
})

t.test('encoded once, shared by every holder of the event', async (t) => {
  const ev: HearthEvent = { ...put, seq: 7 }
  const a = framesOf(ev)
  t.equal(framesOf(ev), a, 'one holder per event object')
  t.equal(a.subscribe, a.subscribe, 'the same Buffer each time')
  t.equal(a.eventsStream, framesOf(ev).eventsStream)
  t.not(new EventFrames(ev).subscribe, a.subscribe, 'a separate holder encodes separately')
  t.equal(a.id, '000000000000E')
})

t.test('non-ASCII and JSON-special paths stay one data line', async (t) => {
  const ev: HearthEvent = { ...put, path: '/pub/"quoted"\\é\u2028.txt' }
  const text = framesOf(ev).subscribe.toString()
  t.equal(text.split('\n').length, 5, 'id, event, data, blank, end')
  const data = JSON.parse(text.split('\n')[2]!.slice('data: '.length))
  t.equal(data.path, ev.path)
  t.equal(framesOf(ev).subscribe.byteLength, Buffer.byteLength(text))
})

t.test('stream signals', async (t) => {
  t.equal(RETRY_FRAME.toString(), 'retry: 2000\n\n')
  t.equal(KEEPALIVE_FRAME.toString(), ': keepalive\n\n')
  t.equal(UPSTREAM_KEEPALIVE_FRAME.toString(), ':\n\n')
  t.equal(idFrame(32), 'id: 0000000000020\n\n')
  t.equal(idFrame(1n), 'id: 0000000000002\n\n')
  t.equal(resetFrame(5, 120n), 'event: reset\ndata: {"requested":"5","floor":"120"}\n\n')
})
