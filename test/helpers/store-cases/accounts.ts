import type { Store } from '../../../src/kv/store.js'
import type { Case } from './common.js'
import { ALICE, BOB, range, within, writeFile } from './common.js'

const user = (i: number) => String(i).padStart(52, 'u')

/** Users, signup tokens, the replay set, sessions and the homeserver key. */
export const accountCases: Record<string, Case> = {
  async 'a user is created once, with usage 0 that only commits change'(t, factory) {
    const { store, second } = await factory.open(t)
    t.equal(await store.user(ALICE), undefined)
    t.equal(await store.createUser(ALICE, 123), 'created')
    t.equal(await store.createUser(ALICE, 456), 'exists')
    t.same(await store.user(ALICE), { createdAt: 123, usage: 0 }, 'the first creation stays')
    await writeFile(store, ALICE, '/pub/f', 40)
    t.same(await store.user(ALICE), { createdAt: 123, usage: 40 })
    if (second === undefined) return
    const b = await second()
    const both = await Promise.all([store.createUser(BOB, 1), b.createUser(BOB, 2)])
    t.same(both.sort(), ['created', 'exists'], 'created once from two instances at once')
  },

  async 'a signup token is redeemed once, even from two instances at once'(t, factory) {
    const { store, second } = await factory.open(t)
    t.equal(await store.addSignupToken('TOKN-0000-0001', 1), true)
    t.equal(await store.addSignupToken('TOKN-0000-0001', 2), false, 'a token is stored once')
    t.equal(await store.createUser(user(1), 1, 'TOKN-9999-9999'), 'unknown-token')
    t.equal(await store.user(user(1)), undefined, 'no user without a valid token')
    t.equal(await store.createUser(user(1), 1, 'TOKN-0000-0001'), 'created')
    t.equal(await store.createUser(user(2), 1, 'TOKN-0000-0001'), 'used-token')
    t.equal(await store.user(user(2)), undefined)
    t.equal(await store.addSignupToken('TOKN-0000-0002', 1), true)
    t.equal(await store.createUser(user(1), 1, 'TOKN-0000-0002'), 'exists', 'an existing user does not spend a token')
    t.equal(await store.createUser(user(3), 1, 'TOKN-0000-0002'), 'created', '... which stays usable')
    const b = second === undefined ? store : await second()
    // many races, so that the losing side is seen at every step of the redemption
    for (const i of range(1, 10)) {
      const token = `RACE-0000-${String(i).padStart(4, '0')}`
      await store.addSignupToken(token, 1)
      const [x, y] = [user(100 + 2 * i), user(101 + 2 * i)]
      const got = await Promise.all([store.createUser(x, 1, token), b.createUser(y, 1, token)])
      t.same([...got].sort(), ['created', 'used-token'], `race ${i}: one created, one refused`)
      const made = (await Promise.all([store.user(x), store.user(y)])).filter((u) => u !== undefined)
      t.equal(made.length, 1, `race ${i}: exactly one user exists`)
    }
  },

  async 'an AuthToken key is claimed once: across instances, after reopening, until forgotten'(t, factory) {
    const { store, second, reopen } = await factory.open(t)
    const key = 'sig\u0000\u00ff\u0001' + 'x'.repeat(60) // raw signature bytes as latin1 text
    t.equal(await store.claimToken(key, 1000), true)
    t.equal(await store.claimToken(key, 1000), false, 'a replay is refused')
    t.equal(await store.claimToken(key.slice(0, -1) + 'y', 1000), true, 'another key is its own')
    let s: Store = store
    if (second !== undefined) {
      const b = await second()
      t.equal(await b.claimToken(key, 1000), false, 'refused on another instance')
      const got = await Promise.all(range(1, 6).map((i) => (i % 2 === 0 ? store : b).claimToken('both', 1000)))
      t.equal(got.filter(Boolean).length, 1, 'six claims at once from two instances: one wins')
    }
    if (reopen !== undefined) {
      s = await reopen()
      t.equal(await s.claimToken(key, 1000), false, 'refused after reopening')
    }
    await s.claimToken('later', 5000)
    t.equal(await s.forgetTokens(1001), second === undefined ? 2 : 3, 'expired keys dropped, with their count')
    t.equal(await s.claimToken(key, 1000), true, 'a forgotten key can be claimed again')
    t.equal(await s.claimToken('later', 5000), false, 'a live key stays')
  },

  async 'expired sessions are forgotten, and every instance hears of each'(t, factory) {
    const { store: a, second } = await factory.open(t)
    const at = (n: number) => ({ user: ALICE, capabilities: '/:rw', createdAt: n })
    await a.putSession('O'.repeat(26), at(1_000))
    await a.putSession('P'.repeat(26), at(2_000))
    await a.putSession('N'.repeat(26), at(3_000))
    const stores = second === undefined ? [a] : [a, await second()]
    const heard = stores.map(() => new Set<string>())
    const stops = stores.map((s, i) => s.onSessionDeleted((secret) => heard[i]!.add(secret)))
    t.teardown(() => stops.forEach((stop) => stop()))
    t.equal(await a.forgetSessions(3_000), 2, 'the two created before the bound')
    await within(5000, (async () => {
      while (heard.some((h) => h.size < 2)) await new Promise((r) => setTimeout(r, 20))
    })(), 'every instance hears both')
    t.same(heard.map((h) => [...h].sort()), stores.map(() => ['O'.repeat(26), 'P'.repeat(26)]))
    t.equal(await a.session('O'.repeat(26)), undefined)
    t.same(await a.session('N'.repeat(26)), at(3_000), 'a younger one stays')
    t.equal(await a.forgetSessions(3_000), 0, 'and nothing is forgotten twice')
  },

  async 'sessions are shared, and every instance hears of a deletion'(t, factory) {
    const { store: a, second } = await factory.open(t)
    const session = { user: ALICE, capabilities: '/pub/app/:rw,/pub/x.txt:r', createdAt: 1_700_000_000_123_456 }
    const secret = 'S'.repeat(26)
    await a.putSession(secret, session)
    t.same(await a.session(secret), session)
    t.equal(await a.session('T'.repeat(26)), undefined)
    const stores = second === undefined ? [a] : [a, await second()]
    for (const s of stores) t.same(await s.session(secret), session, `${s === a ? 'this' : 'another'} instance reads it`)
    const heard = stores.map(
      (s) =>
        new Promise<string>((resolve) => {
          const stop = s.onSessionDeleted((gone) => {
            if (gone !== secret) return
            stop()
            resolve(gone)
          })
        }),
    )
    const last = stores[stores.length - 1]!
    let lateCalls = 0
    const stopLate = a.onSessionDeleted(() => lateCalls++)
    stopLate()
    await last.deleteSession(secret)
    const got = await within(5000, Promise.all(heard), 'every instance hears the deletion')
    t.same(got, stores.map(() => secret), 'the deleting instance and the others hear it')
    t.equal(lateCalls, 0, 'a listener that stopped hears nothing')
    for (const s of stores) t.equal(await s.session(secret), undefined, 'gone everywhere')
    await last.deleteSession(secret) // deleting again is harmless
  },

  async 'the homeserver secret is generated once, for every instance'(t, factory) {
    const { store, second, reopen } = await factory.open(t)
    const k1 = new Uint8Array(32).fill(1)
    const k2 = new Uint8Array(32).fill(2)
    const b = second === undefined ? store : await second()
    const [x, y] = await Promise.all([store.homeserverSecret(() => k1), b.homeserverSecret(() => k2)])
    t.same(Buffer.from(x), Buffer.from(y), 'both instances got the same key')
    t.ok(Buffer.from(x).equals(Buffer.from(k1)) || Buffer.from(x).equals(Buffer.from(k2)), 'one of the generated keys')
    const never = () => {
      throw new Error('generated again')
    }
    t.same(Buffer.from(await store.homeserverSecret(never)), Buffer.from(x), 'stored: not generated again')
    if (reopen === undefined) return
    const s = await reopen()
    t.same(Buffer.from(await s.homeserverSecret(never)), Buffer.from(x), 'kept across reopening')
  },
}
