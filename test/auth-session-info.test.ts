import t from 'tap'
import { keypairFromSecret } from '../src/auth/keys.js'
import { parseCapabilities, ROOT } from '../src/auth/capabilities.js'
import { decodeSessionInfo, encodeSessionInfo } from '../src/auth/session-info.js'
import { PostcardReader, varint } from '../src/auth/postcard.js'
import { isSessionSecret, SessionStore } from '../src/auth/sessions.js'
import { isSignupToken, randomSignupToken, SignupTokens } from '../src/auth/signup-tokens.js'
import { UserStore } from '../src/auth/users.js'
import { openTestStore, TEST_ENGINE } from './helpers/engine.js'

const zeroKey = keypairFromSecret(new Uint8Array(32))

t.test('matches the upstream serialisation vector', async (t) => {
  // pubky-common session.rs: secret key of zeros, created_at 0, user agent "foo", root
  const expected = [
    0, 59, 106, 39, 188, 206, 182, 164, 45, 98, 163, 168, 208, 42, 111, 13, 115, 101, 50, 21, 119, 29, 226, 67,
    166, 58, 192, 72, 161, 139, 89, 218, 41, 0, 0, 3, 102, 111, 111, 1, 4, 47, 58, 114, 119,
  ]
  const bytes = encodeSessionInfo({ publicKey: zeroKey.publicKey, createdAt: 0, userAgent: 'foo', capabilities: [ROOT] })
  t.same([...bytes], expected)
  t.same(decodeSessionInfo(bytes), {
    publicKey: zeroKey.publicKey,
    createdAt: 0,
    name: '',
    userAgent: 'foo',
    capabilities: [ROOT],
  })
})

t.test('round trip', async (t) => {
  const info = {
    publicKey: zeroKey.publicKey,
    createdAt: 1_763_790_000_123_456,
    name: '',
    userAgent: '',
    capabilities: parseCapabilities('/pub/app/:rw,/pub/x.txt:r,/priv/é:w'),
  }
  const bytes = encodeSessionInfo(info)
  t.same(decodeSessionInfo(bytes), info)
  t.equal(bytes[0], 0, 'version')
  t.same(bytes.subarray(1, 33), zeroKey.publicKey)
  t.same(encodeSessionInfo({ ...info, capabilities: [] }).at(-1), 0, 'no capabilities: a zero count')
})

t.test('strict decoding', async (t) => {
  const good = encodeSessionInfo({ publicKey: zeroKey.publicKey, createdAt: 5, capabilities: [ROOT] })
  t.throws(() => decodeSessionInfo(good.subarray(0, good.length - 1)), /end of data/)
  t.throws(() => decodeSessionInfo(new Uint8Array()), /end of data/)
  t.throws(() => decodeSessionInfo(Uint8Array.of(...good, 0)), /Trailing/)
  t.throws(() => decodeSessionInfo(Uint8Array.of(1, ...good.subarray(1))), /version/)
  const badCap = Uint8Array.from(good)
  badCap[badCap.length - 1] = 'x'.charCodeAt(0)
  t.throws(() => decodeSessionInfo(badCap), /actions/)
})

t.test('varints are unsigned LEB128', async (t) => {
  const table: [number | bigint, number[]][] = [
    [0, [0]],
    [1, [1]],
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [300, [0xac, 0x02]],
    [16384, [0x80, 0x80, 0x01]],
    [2n ** 64n - 1n, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
  ]
  for (const [value, bytes] of table) {
    t.same([...varint(value)], bytes, String(value))
    t.equal(new PostcardReader(Uint8Array.from(bytes), 'BadRequest').varint(), BigInt(value))
  }
  t.throws(() => varint(-1))
  t.throws(() => varint(2n ** 64n))
  const read = (bytes: number[]) => () => new PostcardReader(Uint8Array.from(bytes), 'BadRequest').varint()
  t.throws(read([0x80, 0x00]), /Overlong/)
  t.throws(read([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), /overflows/)
  t.throws(read([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), /longer than 10/)
  t.throws(read([0x80]), /end of data/)
})

t.test(`session store on ${TEST_ENGINE}`, async (t) => {
  const { store: engine } = await openTestStore(t)
  const store = new SessionStore(engine, { now: () => 1_700_000_000_000 })
  const caps = parseCapabilities('/pub/app/:rw')
  const { secret, session } = await store.create(zeroKey.z32, caps)
  t.ok(isSessionSecret(secret), 'a 26-character Crockford secret')
  t.equal(secret.length, 26)
  t.same(session, { user: zeroKey.z32, capabilities: caps, createdAt: 1_700_000_000_000_000 })
  t.same(await store.get(secret), session)
  const other = await store.create(zeroKey.z32, [ROOT])
  t.not(other.secret, secret)
  t.equal(await store.get('not a secret'), undefined)
  t.equal(await store.get('0'.repeat(26)), undefined)
  await store.delete(secret)
  t.equal(await store.get(secret), undefined)
  t.same((await store.get(other.secret))?.capabilities, [ROOT])
  await store.delete('whatever')
})

t.test(`with a lifetime, expired sessions are swept from storage on ${TEST_ENGINE}`, async (t) => {
  const { store: engine } = await openTestStore(t)
  let now = 1_700_000_000_000
  const store = new SessionStore(engine, { now: () => now, ttlMs: 60_000 })
  const old = await store.create(zeroKey.z32, [ROOT])
  now += 30_000
  const young = await store.create(zeroKey.z32, [ROOT])
  now += 31_000 // the first is 61 s old, the second 31 s
  t.equal(await store.sweep(), 1, 'one expired session swept')
  t.equal(await engine.session(old.secret), undefined, 'gone from storage, though nobody asked for it')
  t.ok(await engine.session(young.secret), 'the live one stays')
  t.equal(await new SessionStore(engine, { now: () => now }).sweep(), 0, 'without a lifetime nothing expires')
})

t.test(`signup tokens and users on ${TEST_ENGINE}`, async (t) => {
  for (let i = 0; i < 50; i++) t.ok(isSignupToken(randomSignupToken()))
  t.notOk(isSignupToken('abcd-efgh-jkmn'), 'lower case is not the format')
  t.notOk(isSignupToken('ABCD-EFGH-IJKL'), 'I and L are not in the alphabet')
  t.notOk(isSignupToken('ABCDEFGHJKMN'))

  const { store: engine, another } = await openTestStore(t)
  const tokens = new SignupTokens(engine)
  const users = new UserStore(engine, { now: () => 42 })
  // where the engine allows it, the other side of each race is another instance, as in another process
  const rival = another === undefined ? users : new UserStore(await another(), { now: () => 42 })
  const a = keypairFromSecret(new Uint8Array(32).fill(3)).z32
  const b = keypairFromSecret(new Uint8Array(32).fill(4)).z32
  const c = keypairFromSecret(new Uint8Array(32).fill(5)).z32

  t.equal(await users.exists(a), false)
  t.same(await users.create(a), { createdAt: 42, usage: 0 })
  t.same(await users.get(a), { createdAt: 42, usage: 0 })
  t.equal(await users.exists(a), true)
  await t.rejects(users.create(a), { code: 'Conflict', status: 409 })

  const token = await tokens.generate()
  t.ok(isSignupToken(token))
  await t.rejects(users.create(b, 'nope'), { code: 'BadRequest', message: 'Invalid signup token format' })
  await t.rejects(users.create(b, '0000-0000-0000'), { code: 'Unauthorized', message: 'Invalid token' })
  t.equal(await users.exists(b), false, 'a refused token creates no user')

  // two signups racing for one token: exactly one wins
  const results = await Promise.allSettled([users.create(b, token), rival.create(c, token)])
  const lost = results.findIndex((r) => r.status === 'rejected')
  t.same(results.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'one wins')
  t.match((results[lost] as PromiseRejectedResult).reason, { code: 'Unauthorized', message: 'Token already used' })
  const [winner, loser] = lost === 1 ? [b, c] : [c, b]
  t.equal(await users.exists(winner), true)
  t.equal(await users.exists(loser), false)
  await t.rejects(users.create(loser, token), { message: 'Token already used' })

  // two creations of one user racing: exactly one wins
  const d = keypairFromSecret(new Uint8Array(32).fill(6)).z32
  const twice = await Promise.allSettled([users.create(d), rival.create(d)])
  t.same(twice.map((r) => r.status).sort(), ['fulfilled', 'rejected'])
  t.match(twice.find((r) => r.status === 'rejected'), { reason: { code: 'Conflict', status: 409 } })
})
