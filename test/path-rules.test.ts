import t from 'tap'
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import { encodePublicKey } from '../src/auth/keys.js'
import { HearthError } from '../src/errors.js'
import { MAX_SEGMENTS, normalForm } from '../src/paths.js'
import { filterMatches, parseFilter } from '../src/subscriptions/filter.js'
import { SubscriptionTables } from '../src/subscriptions/tables.js'
import { parseEventsStreamQuery } from '../src/subscriptions/upstream.js'
import { newUser, startTestServer } from './helpers/server.js'
import { readSubscribe } from './helpers/sse.js'

// SPEC §2: one set of path rules for storage, filters and feeds, so anything that can be
// stored can be named by a filter: exactly, and by the prefix of each of its folders.

const A = encodePublicKey(randomBytes(32))

/** A filter's path as the README says to write it: `*` and `\` escaped with a `\`. */
const escaped = (path: string) => path.replace(/[\\*]/g, (c) => `\\${c}`)

// Segments from characters that are special somewhere: to filters (`*`, `\`), to
// normalisation (`.`), to URLs (`%`, `?`, `#`), controls of every kind, and anything else.
const tricky = fc.constantFrom('*', '\\', '.', '%', '?', '#', ' ', 'é', '\u0085', '\u009f', '\u00a0', '\u0000', '\u007f', '\u202e', '💩', 'a', 'b')
const segment = fc.oneof(
  { arbitrary: fc.string({ unit: tricky, minLength: 1, maxLength: 6 }), weight: 6 },
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }), weight: 2 },
  { arbitrary: fc.constantFrom('.', '..', '', '**', '\\*', 'x'.repeat(255), 'y'.repeat(256)), weight: 1 },
)
const depth = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 5 }), weight: 5 }, { arbitrary: fc.integer({ min: MAX_SEGMENTS - 3, max: MAX_SEGMENTS + 1 }), weight: 1 })
const rawPath = fc.tuple(fc.constantFrom('/pub/', '/priv/'), depth.chain((n) => fc.array(segment, { minLength: n, maxLength: n }))).map(([root, segs]) => root + segs.join('/'))
/** a path storage accepts for a file: normal, under a writable root, not a folder */
const storable = rawPath
  .map((raw) => normalForm(raw).path)
  .filter((p): p is string => p !== undefined && !p.endsWith('/') && (p.startsWith('/pub/') || p.startsWith('/priv/')))

function refused(fn: () => unknown): boolean {
  try {
    fn()
    return false
  } catch (err) {
    if (err instanceof HearthError && err.status === 400) return true
    throw err
  }
}

t.test('every storable path is named by an exact filter and by the prefix of each of its folders', async (t) => {
  fc.assert(
    fc.property(storable, (path) => {
      const ev = { user: A, path }
      const exact = parseFilter(A + escaped(path))
      if (!(exact.path === path && !exact.prefix && filterMatches(exact, ev))) return false
      if (filterMatches(exact, { user: A, path: `${path}x` })) return false
      const tables = new SubscriptionTables<string>()
      tables.add('exact', [exact])
      for (let at = path.indexOf('/'); at !== -1; at = path.indexOf('/', at + 1)) {
        const prefix = parseFilter(`${A}${escaped(path.slice(0, at + 1))}*`)
        if (!filterMatches(prefix, ev)) return false
        tables.add(`prefix ${at}`, [prefix])
      }
      // a prefix may also end mid-segment, right up to the whole path
      const whole = parseFilter(`*${escaped(path)}*`)
      tables.add('whole', [whole])
      const matched = tables.match(ev)
      if (!matched.has('exact') || !matched.has('whole') || matched.size !== path.split('/').length + 1) return false
      // and /events-stream names it by the same rules
      const q = parseEventsStreamQuery(`user=${A}&path=${encodeURIComponent(path)}`)
      return q.paths.length === 1 && q.paths[0]!.path === path && !q.paths[0]!.prefix
    }),
    { numRuns: 2000 },
  )
})

t.test('an exact filter takes a path exactly when storage holds it as it is', async (t) => {
  fc.assert(
    fc.property(rawPath, (raw) => {
      const normal = normalForm(raw).path
      const storedAsIs = normal === raw && !raw.endsWith('/')
      return refused(() => parseFilter(A + escaped(raw))) === !storedAsIs
    }),
    { numRuns: 2000 },
  )
  t.ok(refused(() => parseFilter(`${A}/pub/a\u0085b`)), 'a C1 character is refused by filters')
  t.equal(normalForm('/pub/a\u0085b').problem, 'control characters', 'and by storage')
  t.equal(normalForm('/pub/a\u009fb').problem, 'control characters')
  t.equal(normalForm('/pub/a\u00a0b').path, '/pub/a\u00a0b', 'U+00A0 is not a control character')
})

t.test('over HTTP: whatever a PUT stored, an exact filter replays', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const samples = fc.sample(storable.filter((p) => p.startsWith('/pub/')), { numRuns: 40, seed: 11 })
  for (const path of new Set(samples)) {
    const res = await alice.request('PUT', path.split('/').map(encodeURIComponent).join('/'), path)
    if (res.status === 409) continue // a file where an earlier sample made a folder, or the reverse
    t.equal(res.status, 201, `PUT ${JSON.stringify(path)}`)
    const seq = server.ctx.events.head
    const filter = encodeURIComponent(alice.user + escaped(path))
    const { status, events } = await readSubscribe(`${server.url}/subscribe?filter=${filter}&lastSeq=${seq - 1}&live=false`)
    t.equal(status, 200)
    t.same(events.map((ev) => [ev.seq, ev.path]), [[String(seq), path]], `followed ${JSON.stringify(path)}`)
  }
})
