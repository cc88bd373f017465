import t from 'tap'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { newUser, startTestServer } from './helpers/server.js'
import { fail } from '../src/errors.js'
import { connect } from 'node:net'
import { once } from 'node:events'
import { until } from './helpers/until.js'

// What reaches the operator's log: the error level, with a stack, only for faults. Anything a
// client causes at will (a 4xx, a 503 or 507 refusal) is one line without a stack.

interface Record {
  level: number
  msg: string
  status?: number
  code?: string
  err?: { stack?: string }
}
const INFO = 30
const WARN = 40
const ERROR = 50

function capture(): { log: FastifyBaseLogger; records: Record[] } {
  const records: Record[] = []
  const log = pino({ level: 'debug', base: undefined }, { write: (line: string) => void records.push(JSON.parse(line) as Record) })
  return { log: log as unknown as FastifyBaseLogger, records }
}

t.test('client-caused answers are info or warn without a stack; faults are errors with one', async (t) => {
  const { log, records } = capture()
  const server = await startTestServer(t, { USER_QUOTA: '100000' }, log)
  const alice = await newUser(server)
  const answered = () => records.filter((r) => r.msg === 'request refused' || r.msg === 'request failed')
  const last = () => answered().at(-1)

  // well inside the quota, however a file's keeping costs are counted
  await alice.put('/pub/big', Buffer.alloc(50_000))
  for (let i = 0; i < 20; i++) t.equal((await alice.request('PUT', `/pub/more/${i}`, Buffer.alloc(60_000))).status, 507)
  const quota = answered()
  t.equal(quota.length, 20, 'one line per refusal')
  t.ok(quota.every((r) => r.level === WARN && r.status === 507 && r.code === 'InsufficientStorage' && r.err === undefined), '507: warn, no stack')

  t.equal((await fetch(`${server.url}/pub/x`, { headers: { 'pubky-host': 'nope' } })).status, 400)
  t.match(last(), { level: INFO, status: 400, code: 'InvalidPublicKey' })
  t.equal((await fetch(`${server.url}/subscribe?filter=bad`)).status, 400)
  t.match(last(), { level: INFO, status: 400, code: 'InvalidFilter' })
  t.equal((await fetch(`${server.url}/pub/x`, { method: 'PUT', headers: { 'pubky-host': alice.user }, body: 'x' })).status, 401)
  t.match(last(), { level: INFO, status: 401 })
  t.ok(answered().every((r) => r.err === undefined), 'none carries an error object or stack')

  // A refusal raised deep in a service is still a refusal; a thrown Error is a fault.
  const files = server.ctx.files
  const meta = files.meta.bind(files)
  files.meta = async () => fail('Unavailable', 'The file is changing too fast to read, try again')
  t.equal((await alice.request('GET', '/pub/big')).status, 503)
  t.match(last(), { level: WARN, status: 503, code: 'Unavailable' })
  t.equal(last()?.err, undefined)
  files.meta = async () => {
    throw new Error('the disk is on fire')
  }
  const res = await alice.request('GET', '/pub/big')
  t.equal(res.status, 500)
  t.notMatch(await res.text(), /fire/, 'the fault stays out of the answer')
  t.equal(last()?.level, ERROR)
  t.match(last()?.err?.stack, /the disk is on fire/, 'and goes to the log, stack and all')
  files.meta = meta
  t.equal(records.filter((r) => r.level >= ERROR).length, 1, 'one error record in all: the fault')
})

t.test('an upload the client abandons mid-body is one info line, never an error', async (t) => {
  const { log, records } = capture()
  const server = await startTestServer(t, {}, log)
  const alice = await newUser(server)
  const { hostname, port } = new URL(server.url)
  for (let i = 0; i < 5; i++) {
    // a PUT that promises a MiB, sends a little, and leaves
    const socket = connect(Number(port), hostname)
    await once(socket, 'connect')
    const headers = Object.entries(alice.headers()).map(([k, v]) => `${k}: ${v}\r\n`).join('')
    await new Promise((resolve) => socket.write(`PUT /pub/abandoned/${i} HTTP/1.1\r\nHost: ${hostname}\r\n${headers}content-length: 1048576\r\n\r\n${'x'.repeat(70_000)}`, resolve))
    const before = records.length
    socket.destroy()
    // the server says something of each: the abandoned upload, or the broken request
    await until(() => records.slice(before).some((r) => r.msg === 'request abandoned by the client' || r.msg === 'request refused'), `the log to say what became of upload ${i}`)
  }
  t.ok(records.some((r) => r.msg === 'request abandoned by the client'), 'an abandoned upload is logged as such')
  t.same(records.filter((r) => r.level >= WARN).map((r) => r.msg), [], 'no warning or error for them')
})
