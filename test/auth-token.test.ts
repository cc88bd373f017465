import t from 'tap'
import { HearthError } from '../src/errors.js'
import { keypairFromSecret, sign } from '../src/auth/keys.js'
import { decodeAuthToken, NAMESPACE, signAuthToken, verifyAuthToken } from '../src/auth/token.js'
import { ReplayGuard } from '../src/auth/replay.js'
import { LevelStore } from '../src/kv/level/store.js'
import { tempDir } from './helpers/server.js'
import { concat, postcardString } from '../src/auth/postcard.js'

const NOW = 1_763_790_000_000
const clock = { now: () => NOW }
const kp = keypairFromSecret(new Uint8Array(32).fill(1))
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

function refused(t: Tap, bytes: Uint8Array, reason: RegExp, code = 'InvalidToken'): void {
  try {
    verifyAuthToken(bytes, clock)
    t.fail(`accepted, expected ${reason}`)
  } catch (err) {
    t.ok(err instanceof HearthError, 'a HearthError')
    const e = err as HearthError
    t.equal(e.code, code)
    t.equal(e.status, 400)
    t.match(e.message, reason)
  }
}

// builds a token by hand so its parts can be broken one at a time
function build(parts: { version?: number; ts?: number; caps?: string; signFrom?: number; namespace?: Uint8Array }): Uint8Array {
  const ts = new Uint8Array(8)
  new DataView(ts.buffer).setBigUint64(0, BigInt((parts.ts ?? NOW) * 1000))
  const bytes = concat(
    new Uint8Array(64),
    parts.namespace ?? NAMESPACE,
    Uint8Array.of(parts.version ?? 0),
    ts,
    kp.publicKey,
    postcardString(parts.caps ?? '/:rw'),
  )
  bytes.set(sign(bytes.subarray(parts.signFrom ?? 65), kp.secretKey), 0)
  return bytes
}

t.test('a good token verifies and reads back', async (t) => {
  const bytes = signAuthToken(kp, '/pub/app/:rw,/pub/x.txt:r', NOW)
  const token = verifyAuthToken(bytes, clock)
  t.equal(token.user, kp.z32)
  t.same(token.publicKey, kp.publicKey)
  t.equal(token.timestamp, BigInt(NOW) * 1000n)
  t.same(token.capabilities, [
    { scope: '/pub/app/', actions: 'rw' },
    { scope: '/pub/x.txt', actions: 'r' },
  ])
  t.same(build({ caps: '/pub/app/:rw,/pub/x.txt:r' }), bytes, 'the byte layout is the documented one')
  t.equal(new TextDecoder().decode(bytes.subarray(64, 74)), 'PUBKY:AUTH')
  t.equal(bytes[74], 0)
  t.equal(new DataView(bytes.buffer).getBigUint64(75), BigInt(NOW) * 1000n)
  t.same(bytes.subarray(83, 115), kp.publicKey)
  t.equal(bytes[115], 25)
  t.equal(bytes.length, 116 + 25)
  t.same(verifyAuthToken(signAuthToken(kp, [{ scope: '/', actions: 'rw' }], NOW), clock).capabilities, [
    { scope: '/', actions: 'rw' },
  ])
  t.same(verifyAuthToken(signAuthToken(kp, '', NOW), clock).capabilities, [], 'no capabilities')
})

t.test('the signature covers [65..], not [64..]', async (t) => {
  t.ok(verifyAuthToken(build({ signFrom: 65 }), clock))
  refused(t, build({ signFrom: 64 }), /signature/)
  refused(t, build({ signFrom: 0 }), /signature/)
})

t.test('any changed byte breaks it', async (t) => {
  const good = build({})
  for (const at of [0, 63, 66, 80, 90, 114, 117]) {
    const bad = Uint8Array.from(good)
    bad[at]! ^= 1
    refused(t, bad, /signature|capabilit|namespace/)
  }
  const other = keypairFromSecret(new Uint8Array(32).fill(2))
  const swapped = Uint8Array.from(good)
  swapped.set(other.publicKey, 83)
  refused(t, swapped, /signature/)
})

t.test('strict decoding', async (t) => {
  const good = build({})
  for (const n of [0, 1, 64, 74, 83, 114, 115, good.length - 1]) {
    refused(t, good.subarray(0, n), /too short|end of data/)
  }
  refused(t, concat(good, Uint8Array.of(0)), /Trailing bytes/)
  refused(t, concat(good, new TextEncoder().encode(',/x:r')), /Trailing bytes/)
  refused(t, build({ version: 1 }), /version 1/)
  refused(t, build({ version: 255 }), /version/)
  refused(t, build({ namespace: new TextEncoder().encode('pUBKY:AUTH') }), /namespace/)
  refused(t, build({ namespace: new TextEncoder().encode('PUBKY:AUTX') }), /namespace/)
  refused(t, build({ caps: 'pub/x:r' }), /capabilities: .*scope must start with \//)
  refused(t, build({ caps: '/pub/x:rx' }), /actions/)
  const badUtf8 = concat(good.subarray(0, 115), Uint8Array.of(2, 0xc3, 0x28))
  refused(t, badUtf8, /UTF-8/)
  const overlong = concat(good.subarray(0, 115), Uint8Array.of(0x84, 0x00), new TextEncoder().encode('/:rw'))
  refused(t, overlong, /Overlong/)
  t.throws(() => decodeAuthToken(good.subarray(0, 100)), /too short/)
  t.equal(decodeAuthToken(build({ ts: 0 })).timestamp, 0n, 'decoding alone ignores the clock')
})

t.test('clock skew: ±180 s accepted, beyond refused', async (t) => {
  for (const s of [-180, -179, 0, 179, 180]) t.ok(verifyAuthToken(build({ ts: NOW + s * 1000 }), clock), `${s} s`)
  refused(t, build({ ts: NOW + 181_000 }), /future/)
  refused(t, build({ ts: NOW - 181_000 }), /past/)
  refused(t, build({ ts: NOW + 180_001 }), /future/)
  refused(t, build({ ts: 0 }), /past/)
  t.ok(verifyAuthToken(build({ ts: NOW - 30_000 }), { now: () => NOW, skewMs: 45_000 }), 'custom skew')
  t.throws(() => verifyAuthToken(build({ ts: NOW - 46_000 }), { now: () => NOW, skewMs: 45_000 }), /45 seconds/)
})

t.test('replay guard: each token once, also after the store is reopened; expired entries are dropped', async (t) => {
  let now = NOW
  const dir = tempDir(t)
  let { store } = await LevelStore.open(dir)
  t.teardown(() => store.close())
  let guard = new ReplayGuard(store, { now: () => now })
  const check = async (bytes: Uint8Array) => guard.claim(verifyAuthToken(bytes, { now: () => now }))
  const first = signAuthToken(kp, '/:rw', NOW)
  await check(first)
  await t.rejects(check(first), { code: 'TokenReplayed', status: 400 })
  await check(signAuthToken(kp, '/:rw', NOW + 1))
  await check(signAuthToken(kp, '/pub/:rw', NOW))

  await store.close()
  ;({ store } = await LevelStore.open(dir))
  guard = new ReplayGuard(store, { now: () => now })
  await t.rejects(check(first), { code: 'TokenReplayed' }, 'remembered across a restart')

  now = NOW + 180_000
  await t.rejects(check(first), { code: 'TokenReplayed' }, 'remembered to the last accepted instant')
  now = NOW + 181_000
  await t.rejects(check(first), { code: 'InvalidToken' }, 'then the clock refuses it')
  t.equal(await store.forgetTokens(now), 3, 'and its entry, like every expired one, can go')
  await check(signAuthToken(kp, '/:rw', now))
})
