import t from 'tap'
import { NAMESPACES, type BatchOp, type KV, type Namespace, type Range } from '../src/kv/backend.js'
import { LevelKV } from '../src/kv/level.js'
import { MemoryKV } from '../src/kv/memory.js'
import { tempDir, type Teardown } from './helpers/server.js'

/**
 * The one conformance suite of the KV interface (src/kv/backend.ts). Every backend runs all
 * of it through its factory; a new backend joins by adding one line to `backends`.
 * `reopen` is given only by durable backends: it closes the store and opens a fresh instance
 * on the same data.
 */
interface Backend {
  name: string
  open(t: Teardown): Promise<{ kv: KV; reopen?: () => Promise<KV> }>
}

const backends: Backend[] = [
  {
    name: 'LevelKV',
    async open(t) {
      const dir = tempDir(t, 'hearth-kv-')
      let kv = new LevelKV(dir)
      await kv.open()
      t.teardown(() => kv.close())
      return {
        kv,
        async reopen() {
          await kv.close()
          kv = new LevelKV(dir)
          await kv.open()
          return kv
        },
      }
    },
  },
  {
    name: 'MemoryKV',
    async open(t) {
      const kv = new MemoryKV()
      await kv.open()
      t.teardown(() => kv.close())
      return { kv }
    },
  },
]

const put = (ns: Namespace, key: string, value: string | Uint8Array): BatchOp => ({ type: 'put', ns, key, value })
const del = (ns: Namespace, key: string): BatchOp => ({ type: 'del', ns, key })

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

const keysOf = (kv: KV, ns: Namespace, range: Range) => collect(kv.keys(ns, range))

for (const backend of backends) {
  t.test(backend.name, async (t) => {
    t.test('get and getMany: present, absent, in order', async (t) => {
      const { kv } = await backend.open(t)
      t.equal(await kv.get('meta', 'nope'), undefined)
      await kv.batch([put('meta', 'a', '1'), put('meta', 'b', '2')])
      t.equal(await kv.get('meta', 'a'), '1')
      t.same(await kv.getMany('meta', ['b', 'x', 'a']), ['2', undefined, '1'])
      t.same(await kv.getMany('meta', []), [])
    })

    t.test('namespaces are separate key spaces', async (t) => {
      const { kv } = await backend.open(t)
      await kv.batch([put('users', 'k', 'users'), put('sessions', 'k', 'sessions')])
      t.equal(await kv.get('users', 'k'), 'users')
      t.equal(await kv.get('sessions', 'k'), 'sessions')
      t.equal(await kv.get('meta', 'k'), undefined)
      t.same(await keysOf(kv, 'users', {}), ['k'])
      await kv.batch([del('users', 'k')])
      t.equal(await kv.get('sessions', 'k'), 'sessions', 'deleting in one namespace leaves the other')
    })

    t.test('a batch applies puts and deletes in order', async (t) => {
      const { kv } = await backend.open(t)
      await kv.batch([put('meta', 'a', '1'), put('meta', 'b', '1')])
      await kv.batch([del('meta', 'a'), put('meta', 'b', '2'), put('meta', 'c', '3'), del('meta', 'c'), put('meta', 'b', '4')], { sync: true })
      t.equal(await kv.get('meta', 'a'), undefined)
      t.equal(await kv.get('meta', 'b'), '4', 'the last put of a key wins')
      t.equal(await kv.get('meta', 'c'), undefined, 'a delete after a put in one batch wins')
      await kv.batch([])
      await kv.batch([del('meta', 'never-there')])
      t.same(await keysOf(kv, 'meta', {}), ['b'])
    })

    t.test('a batch with an invalid op applies nothing', async (t) => {
      const { kv } = await backend.open(t)
      await kv.batch([put('meta', 'keep', 'old')])
      const invalid: [string, BatchOp][] = [
        ['an unknown namespace', { type: 'put', ns: 'nope' as Namespace, key: 'x', value: 'y' }],
        ['a delete in an unknown namespace', { type: 'del', ns: 'nope' as Namespace, key: 'x' }],
        ['bytes in a text namespace', put('meta', 'x', Uint8Array.of(1))],
        ['text in a bytes namespace', put('content', 'x', 'text')],
        ['a key that is not a string', put('meta', 1 as unknown as string, 'y')],
        ['an unknown op type', { type: 'merge', ns: 'meta', key: 'x', value: 'y' } as unknown as BatchOp],
      ]
      for (const [what, bad] of invalid) {
        const ops = [put('meta', 'keep', 'new'), put('meta', 'added', '1'), del('users', 'u'), bad, put('meta', 'after', '1')]
        await kv.batch([put('meta', 'keep', 'old'), del('meta', 'added'), del('meta', 'after'), put('users', 'u', 'present')])
        await t.rejects(kv.batch(ops, { sync: true }), `${what} is refused`)
        t.equal(await kv.get('meta', 'keep'), 'old', `${what}: earlier puts not applied`)
        t.equal(await kv.get('meta', 'added'), undefined, `${what}: no new keys`)
        t.equal(await kv.get('users', 'u'), 'present', `${what}: earlier deletes not applied`)
        t.equal(await kv.get('meta', 'after'), undefined, `${what}: later ops not applied`)
      }
      t.same(await keysOf(kv, 'meta', {}), ['keep'])
    })

    t.test('bytes namespaces round-trip exact bytes; text namespaces give strings', async (t) => {
      const { kv } = await backend.open(t)
      const all = Uint8Array.from({ length: 256 }, (_, i) => i)
      const invalidUtf8 = Uint8Array.of(0xff, 0xfe, 0x00, 0xc3)
      await kv.batch([put('content', 'all', all), put('content', 'bad', invalidUtf8), put('content', 'empty', new Uint8Array())])
      const got = await kv.get('content', 'all')
      t.ok(got instanceof Uint8Array, 'a Uint8Array comes back')
      t.same([...(got as Uint8Array)], [...all])
      t.same([...((await kv.get('content', 'bad')) as Uint8Array)], [...invalidUtf8], 'not decoded as text')
      const empty = await kv.get('content', 'empty')
      t.ok(empty instanceof Uint8Array && empty.length === 0, 'an empty value is present and empty')
      const many = await kv.getMany('content', ['bad', 'missing'])
      t.same([...(many[0] as Uint8Array)], [...invalidUtf8])
      t.equal(many[1], undefined)
      const [entry] = await collect(kv.entries('content', { gte: 'bad', limit: 1 }))
      t.ok(entry![1] instanceof Uint8Array)
      // Mutating what was read or written does not reach the store.
      ;(got as Uint8Array)[0] = 99
      all[1] = 99
      t.equal(((await kv.get('content', 'all')) as Uint8Array)[0], 0)
      t.equal(((await kv.get('content', 'all')) as Uint8Array)[1], 1)
      const text = 'héllo ✓ 😀 \u0000 end'
      await kv.batch([put('files', 'k', text), put('files', 'empty', '')])
      t.equal(await kv.get('files', 'k'), text)
      t.equal(await kv.get('files', 'empty'), '', 'an empty string is a value, not absence')
    })

    t.test('every namespace the interface declares is usable', async (t) => {
      const { kv } = await backend.open(t)
      for (const [ns, enc] of Object.entries(NAMESPACES) as [Namespace, string][]) {
        const value = enc === 'bytes' ? Uint8Array.of(7) : 'v'
        await kv.batch([put(ns, 'k', value)])
        t.same(await kv.get(ns, 'k'), value, ns)
      }
    })

    t.test('ranges: gt, gte, lt, lte, reverse, limit', async (t) => {
      const { kv } = await backend.open(t)
      const keys = ['a', 'b', 'c', 'd', 'e']
      await kv.batch(keys.map((k) => put('log', k, k.toUpperCase())))
      t.same(await keysOf(kv, 'log', {}), keys)
      t.same(await keysOf(kv, 'log', { gt: 'b' }), ['c', 'd', 'e'])
      t.same(await keysOf(kv, 'log', { gte: 'b' }), ['b', 'c', 'd', 'e'])
      t.same(await keysOf(kv, 'log', { lt: 'd' }), ['a', 'b', 'c'])
      t.same(await keysOf(kv, 'log', { lte: 'd' }), ['a', 'b', 'c', 'd'])
      t.same(await keysOf(kv, 'log', { gt: 'a', lt: 'e' }), ['b', 'c', 'd'])
      t.same(await keysOf(kv, 'log', { gte: 'bb', lte: 'cc' }), ['c'], 'bounds need not be keys')
      t.same(await keysOf(kv, 'log', { gt: 'c', lt: 'c' }), [])
      t.same(await keysOf(kv, 'log', { gt: 'd', lt: 'b' }), [], 'an inverted range is empty')
      t.same(await keysOf(kv, 'log', { reverse: true }), [...keys].reverse())
      t.same(await keysOf(kv, 'log', { gt: 'a', lte: 'd', reverse: true }), ['d', 'c', 'b'])
      t.same(await keysOf(kv, 'log', { limit: 2 }), ['a', 'b'])
      t.same(await keysOf(kv, 'log', { limit: 2, reverse: true }), ['e', 'd'], 'limit counts from the reverse end')
      t.same(await keysOf(kv, 'log', { gt: 'b', limit: 2, reverse: true }), ['e', 'd'])
      t.same(await keysOf(kv, 'log', { lt: 'c', limit: 5, reverse: true }), ['b', 'a'])
      t.same(await keysOf(kv, 'log', { limit: 0 }), [], 'limit 0 gives nothing')
      t.same(await keysOf(kv, 'log', { limit: 100 }), keys)
      t.same(await collect(kv.entries('log', { gte: 'd' })), [['d', 'D'], ['e', 'E']])
      t.same(await collect(kv.entries('log', { lt: 'c', reverse: true })), [['b', 'B'], ['a', 'A']])
      t.same(await keysOf(kv, 'users', {}), [], 'other namespaces stay out of a range')
    })

    t.test('keys sort by their UTF-8 bytes', async (t) => {
      const { kv } = await backend.open(t)
      // byte order: '/'(2f) < '0'(30) < ':'(3a) < 'Z'(5a) < 'z'(7a) < 'é'(c3 a9) < '\uffff'(ef bf bf) < '😀'(f0 9f 98 80)
      // UTF-16 order would put '😀' (d83d de00) before '\uffff': a backend sorting JS strings fails here.
      const sorted = ['', '\u0001', 'a', 'a/', 'a/b', 'a0', 'a:', 'aZ', 'az', 'aé', 'a\uffff', 'a😀']
      const shuffled = [...sorted].sort(() => Math.random() - 0.5)
      await kv.batch(shuffled.filter((k) => k !== '').map((k) => put('files', k, k)))
      const expected = sorted.filter((k) => k !== '')
      t.same(await keysOf(kv, 'files', {}), expected)
      t.same(await keysOf(kv, 'files', { reverse: true }), [...expected].reverse())
      t.same(await keysOf(kv, 'files', { gt: 'a/', lt: 'a0' }), ['a/b'], "everything under 'a/' sorts before 'a0'")
      t.same(await keysOf(kv, 'files', { gt: 'az', lt: 'a😀' }), ['aé', 'a\uffff'])
      t.same(await keysOf(kv, 'files', { gt: 'a\uffff' }), ['a😀'], 'range bounds compare by bytes too')
      t.same(await keysOf(kv, 'files', { lt: 'a\uffff', gt: 'aé' }), [])
    })

    t.test('keys() lists keys without values; deleted keys are gone', async (t) => {
      const { kv } = await backend.open(t)
      await kv.batch([put('sessions', 'x', 'X'), put('sessions', 'y', 'Y'), put('sessions', 'z', 'Z')])
      await kv.batch([del('sessions', 'y')])
      t.same(await keysOf(kv, 'sessions', {}), ['x', 'z'])
      t.same(await keysOf(kv, 'sessions', { gt: 'x' }), ['z'])
    })

    t.test('an iterator sees a consistent view while a batch lands', async (t) => {
      const { kv } = await backend.open(t)
      await kv.batch(Array.from({ length: 50 }, (_, i) => put('log', String(i).padStart(3, '0'), 'v')))
      const seen: string[] = []
      for await (const k of kv.keys('log', {})) {
        seen.push(k)
        if (seen.length === 1) await kv.batch([del('log', '049'), put('log', '100', 'v')])
      }
      // Whatever a backend decides about concurrent writes, it yields keys in order, once each.
      t.same(seen, [...seen].sort(), 'still in order')
      t.equal(new Set(seen).size, seen.length, 'no key twice')
      t.ok(seen.length >= 49 && seen.length <= 51)
    })

    if (backend.name === 'MemoryKV') t.comment('MemoryKV: durability checks skipped (not durable by design)')

    t.test('close then reopen keeps every committed batch', { skip: backend.name === 'MemoryKV' && 'not durable' }, async (t) => {
      const { kv, reopen } = await backend.open(t)
      t.ok(reopen, 'a durable backend provides reopen')
      await kv.batch([put('meta', 'head', '42'), put('content', 'c', Uint8Array.of(0, 255)), put('files', 'é', 'x')], { sync: true })
      await kv.batch([put('meta', 'gone', '1')])
      await kv.batch([del('meta', 'gone')], { sync: true })
      const again = await reopen!()
      t.equal(await again.get('meta', 'head'), '42')
      t.same([...((await again.get('content', 'c')) as Uint8Array)], [0, 255])
      t.equal(await again.get('meta', 'gone'), undefined)
      t.same(await keysOf(again, 'files', {}), ['é'])
    })
  })
}
