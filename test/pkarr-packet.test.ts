import { concat } from 'hearth-homeserver-client/bytes'
import t from 'tap'
import { keypairFromSecret } from '../src/auth/keys.js'
import { DnsError, decodeMessage, decodeSvcb, encodeName, encodeSvcb } from '../src/pkarr/dns.js'
import {
  HOMESERVER_TTL, PacketError, apexEndpoints, homeserverDns, homeserverPacket, isMoreRecent, parsePayload, signPacket,
} from '../src/pkarr/packet.js'

const ZERO = new Uint8Array(32)
const ZERO_Z32 = '8pinxxgqs41n4aididenw5apqp1urfmzdztr8jt4abrkdn435ewo'
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

t.test('known vector: all-zero key, port 6286, localhost', async (t) => {
  const kp = keypairFromSecret(ZERO)
  t.equal(kp.z32, ZERO_Z32)
  const dns = homeserverDns(kp.z32, { host: 'localhost', port: 6286 })
  t.equal(dns.length, 95)
  t.equal(hex(dns.subarray(0, 17)), '000084000000000100000000343870696e')
  // the record ends with SvcParam 65280 = 0x188e (6286)
  t.equal(hex(dns.subarray(-6)), 'ff000002188e')
  const signed = homeserverPacket(ZERO, { host: 'localhost', port: 6286 }, 1_700_000_000_000_000n)
  t.equal(signed.z32, ZERO_Z32)
  t.equal(signed.payload.length, 64 + 8 + 95)
  t.equal(Buffer.from(signed.payload).readBigUInt64BE(64), 1_700_000_000_000_000n)
  t.same(signed.payload.subarray(72), dns)
})

t.test('signature verifies; any flipped byte fails', async (t) => {
  const { publicKey } = keypairFromSecret(ZERO)
  const { payload, timestamp } = homeserverPacket(ZERO, { host: 'localhost', port: 6286 })
  const parsed = parsePayload(publicKey, payload)
  t.equal(parsed.timestamp, timestamp)
  for (const at of [0, 63, 64, 71, 72, 100, payload.length - 1]) {
    const bad = Uint8Array.from(payload)
    bad[at]! ^= 1
    t.throws(() => parsePayload(publicKey, bad), PacketError, `flip at ${at}`)
  }
  const other = keypairFromSecret(new Uint8Array(32).fill(7)).publicKey
  t.throws(() => parsePayload(other, payload), PacketError, 'another key')
  t.throws(() => parsePayload(publicKey, payload.subarray(0, 80)), PacketError, 'too short')
})

t.test('reads the HTTPS record back', async (t) => {
  const { publicKey } = keypairFromSecret(ZERO)
  const { payload } = homeserverPacket(ZERO, { host: 'homeserver.example.com', port: 443 })
  const parsed = parsePayload(publicKey, payload)
  t.equal(parsed.message.flags, 0x8400)
  t.equal(parsed.message.questions.length, 0)
  t.equal(parsed.message.answers[0]!.name, ZERO_Z32)
  t.same(apexEndpoints(publicKey, parsed), [
    { priority: 1, target: 'homeserver.example.com', ttl: HOMESERVER_TTL, httpPort: 443, port: undefined },
  ])
})

t.test('decoder follows compression pointers and rejects malformed input', async (t) => {
  const name = encodeName('_pubky.example')
  const header = Buffer.from('000084000000000200000000', 'hex')
  const fixed = (rdlen: number) => Buffer.from([0, 65, 0, 1, 0, 0, 0, 60, 0, rdlen])
  const rdata = encodeSvcb({ priority: 0, target: 'example', params: new Map() })
  // the second record's name points back at the first one's (offset 12)
  const msg = concat(header, name, fixed(rdata.length), rdata, Buffer.from([0xc0, 12]), fixed(rdata.length), rdata)
  const decoded = decodeMessage(msg)
  t.same(decoded.answers.map((r) => r.name), ['_pubky.example', '_pubky.example'])
  t.equal(decodeSvcb(msg, decoded.answers[1]!.offset, rdata.length).target, 'example')

  t.throws(() => decodeMessage(msg.subarray(0, msg.length - 1)), DnsError, 'truncated')
  t.throws(() => decodeMessage(concat(msg, new Uint8Array([0]))), DnsError, 'trailing byte')
  t.throws(() => decodeMessage(new Uint8Array(5)), DnsError, 'short header')
  const loop = concat(Buffer.from('000084000000000100000000', 'hex'), Buffer.from([0xc0, 12]), fixed(0))
  t.throws(() => decodeMessage(loop), DnsError, 'pointer to itself')
  const unordered = Buffer.from([0, 1, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0])
  t.throws(() => decodeSvcb(unordered), DnsError, 'SvcParam keys out of order')
  t.throws(() => encodeName('a'.repeat(64)), DnsError, 'label too long')
  t.throws(() => signPacket(ZERO, new Uint8Array(1001)), PacketError, 'DNS over 1000 bytes')
})

t.test('ordering: later timestamp wins, ties go to the larger packet', async (t) => {
  const a = { timestamp: 2n, dns: new Uint8Array([1]) }
  const b = { timestamp: 1n, dns: new Uint8Array([9]) }
  t.ok(isMoreRecent(a, b))
  t.notOk(isMoreRecent(b, a))
  t.ok(isMoreRecent({ timestamp: 1n, dns: new Uint8Array([2]) }, { timestamp: 1n, dns: new Uint8Array([1]) }))
  t.notOk(isMoreRecent(a, a))
})
