import t from 'tap'
import { randomBytes } from 'node:crypto'
import { encodePublicKey } from '../src/auth/keys.js'
import { filterMatches, parseFilter, parseFilters, type Filter } from '../src/subscriptions/filter.js'
import { SubscriptionTables } from '../src/subscriptions/tables.js'
import { seededRandom } from './helpers/random.js'

const key = () => encodePublicKey(randomBytes(32))
const A = key()
const B = key()

interface Sub {
  name: string
  owner?: string
}

function names(set: Iterable<Sub>): string[] {
  return [...set].map((s) => s.name).sort()
}

function tablesWith(entries: Record<string, string[]>) {
  const tables = new SubscriptionTables<Sub>()
  const subs = new Map<string, Sub>()
  for (const [name, texts] of Object.entries(entries)) {
    const sub = { name }
    subs.set(name, sub)
    tables.add(sub, parseFilters(texts))
  }
  return { tables, subs }
}

t.test('exact, prefix, everything, user and *', async (t) => {
  const { tables } = tablesWith({
    exact: [`${A}/pub/pubky.app/profile.json`],
    anyExact: ['*/pub/pubky.app/profile.json'],
    folder: [`${A}/pub/pubky.app/posts/*`],
    anyFolder: ['*/pub/pubky.app/posts/*'],
    user: [`${A}/*`],
    bare: [A],
    all: ['*'],
    other: [`${B}/*`],
  })
  t.same(names(tables.match({ user: A, path: '/pub/pubky.app/profile.json' })), ['all', 'anyExact', 'bare', 'exact', 'user'])
  t.same(names(tables.match({ user: B, path: '/pub/pubky.app/profile.json' })), ['all', 'anyExact', 'other'])
  t.same(names(tables.match({ user: A, path: '/pub/pubky.app/posts/0033' })), ['all', 'anyFolder', 'bare', 'folder', 'user'])
  t.same(names(tables.match({ user: B, path: '/pub/pubky.app/posts/0033' })), ['all', 'anyFolder', 'other'])
  t.same(names(tables.match({ user: key(), path: '/pub/elsewhere' })), ['all'])
  t.same(names(tables.match({ user: A, path: '/pub/pubky.app/posts' })), ['all', 'bare', 'user'], 'a folder prefix needs its slash')
  t.equal(tables.size, 8)
})

t.test('prefixes that end mid-segment', async (t) => {
  const { tables } = tablesWith({
    po: [`${A}/pub/pubky.app/po*`],
    posts: [`${A}/pub/pubky.app/posts*`],
    p: ['*/pub/p*'],
    slash: [`${A}/*`],
    x: [`${A}/pub/pubky.app/x*`],
  })
  t.same(names(tables.match({ user: A, path: '/pub/pubky.app/posts/1' })), ['p', 'po', 'posts', 'slash'])
  t.same(names(tables.match({ user: A, path: '/pub/pubky.app/poll' })), ['p', 'po', 'slash'])
  t.same(names(tables.match({ user: A, path: '/pub/pubky.app/posts' })), ['p', 'po', 'posts', 'slash'], 'the file named like the prefix')
  t.same(names(tables.match({ user: A, path: '/pub/pubky.app/p' })), ['p', 'slash'], 'shorter than the remainder')
  t.same(names(tables.match({ user: A, path: '/pub/pubky.app/other/po' })), ['p', 'slash'], 'only at its own boundary')
  t.same(names(tables.match({ user: B, path: '/pub/pubky.app/posts/1' })), ['p'])
  t.same(names(tables.match({ user: B, path: '/priv/pubky.app/posts/1' })), [])
})

t.test('a subscriber matched by several filters comes once', async (t) => {
  const { tables } = tablesWith({
    many: ['*', `${A}/*`, `${A}/pub/*`, `${A}/pub/a.txt`, '*/pub/a.txt', '*/pub/a*', '*/*'],
    one: [`${A}/pub/a.txt`],
  })
  const got = [...tables.match({ user: A, path: '/pub/a.txt' })]
  t.same(names(got), ['many', 'one'])
  t.equal(got.length, 2)
})

t.test('remove and replace', async (t) => {
  const { tables, subs } = tablesWith({
    a: [`${A}/pub/a*`, `${A}/pub/x.json`],
    b: [`${A}/pub/ab*`, `${A}/pub/x.json`],
  })
  const ev = { user: A, path: '/pub/abc' }
  t.same(names(tables.match(ev)), ['a', 'b'])
  t.ok(tables.remove(subs.get('b')!))
  t.notOk(tables.remove(subs.get('b')!), 'twice is a no-op')
  t.same(names(tables.match(ev)), ['a'])
  t.same(names(tables.match({ user: A, path: '/pub/x.json' })), ['a'])
  tables.add(subs.get('a')!, [parseFilter(`${B}/*`)])
  t.same(names(tables.match(ev)), [], 'add replaces the old filters')
  t.same(names(tables.match({ user: B, path: '/pub/abc' })), ['a'])
  t.same(tables.filtersOf(subs.get('a')!)?.map((f) => f.text), [`${B}/*`])
  tables.remove(subs.get('a')!)
  t.equal(tables.size, 0)
  t.notOk(tables.has(subs.get('a')!))
  t.same(names(tables.match({ user: B, path: '/pub/abc' })), [])
})

t.test('a subscriber carries its own data', async (t) => {
  const tables = new SubscriptionTables<Sub>()
  const mine = { name: 'session', owner: A }
  tables.add(mine, [parseFilter(`${A}/priv/*`)])
  const [got] = tables.match({ user: A, path: '/priv/notes.txt' })
  t.equal(got?.owner, A)
})

t.test('match equals a naive scan over all filters (seeded random)', async (t) => {
  const rand = seededRandom(0x5eed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const users = [A, B, key()]
  const words = ['a', 'ab', 'abc', 'b', 'posts', 'po', 'p', 'x.json', 'é']
  const randomPath = () => {
    const depth = 1 + Math.floor(rand() * 4)
    return '/' + Array.from({ length: depth }, () => pick(words)).join('/')
  }
  const randomFilter = (): Filter => {
    const user = rand() < 0.3 ? '*' : pick(users)
    const path = randomPath()
    const r = rand()
    if (r < 0.05) return parseFilter(user === '*' ? '*' : user)
    if (r < 0.4) return parseFilter(`${user}${path}`)
    if (r < 0.7) return parseFilter(`${user}${path}/*`)
    const cut = 1 + Math.floor(rand() * (path.length - 1))
    return parseFilter(`${user}${path.slice(0, cut)}*`)
  }
  const mismatches: string[] = []
  let compared = 0
  let matched = 0
  for (let round = 0; round < 20; round++) {
    const tables = new SubscriptionTables<Sub>()
    const all = new Map<Sub, Filter[]>()
    for (let i = 0; i < 60; i++) {
      const sub = { name: `s${i}` }
      const filters = Array.from({ length: 1 + Math.floor(rand() * 4) }, randomFilter)
      tables.add(sub, filters)
      all.set(sub, filters)
    }
    for (const sub of [...all.keys()].filter(() => rand() < 0.3)) {
      tables.remove(sub)
      all.delete(sub)
    }
    for (let e = 0; e < 200; e++) {
      const ev = { user: pick(users), path: randomPath() }
      const naive = [...all].filter(([, fs]) => fs.some((f) => filterMatches(f, ev))).map(([s]) => s.name)
      const got = [...tables.match(ev)].map((s) => s.name)
      const want = naive.sort()
      if (got.length !== new Set(got).size || got.sort().join() !== want.join()) {
        mismatches.push(`${ev.user.slice(0, 6)}${ev.path}: tables [${got.join(' ')}], scan [${want.join(' ')}]`)
      }
      compared++
      matched += want.length
    }
  }
  t.same(mismatches, [], 'the tables match exactly the subscribers the scan finds, each once')
  t.equal(compared, 200 * 20, 'over every event of every round')
  t.ok(matched > compared, `with ${matched} matches in all: hits were compared, not only misses`)
})

