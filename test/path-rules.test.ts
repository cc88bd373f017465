import t from 'tap'
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import { encodePublicKey } from '../src/auth/keys.js'
import { HearthError } from '../src/errors.js'
import { MAX_PATH_BYTES, MAX_SEGMENT_BYTES, MAX_SEGMENTS, normalForm } from '../src/paths.js'
import { filterMatches, parseFilter } from '../src/subscriptions/filter.js'
import { SubscriptionTables } from '../src/subscriptions/tables.js'
import { parseEventsStreamQuery } from '../src/subscriptions/events-stream-query.js'
import { newUser, startTestServer } from './helpers/server.js'
import { RawStream } from './helpers/feed.js'
import { fuzzSeed } from './helpers/hostile-corpus.js'

// SPEC §2: one set of path rules for storage, filters and feeds, so anything that can be
// stored can be named by a filter: exactly, and by the prefix of each of its folders.

const A = encodePublicKey(randomBytes(32))
const seed = fuzzSeed()
t.comment(`seed ${seed} (HEARTH_FUZZ_SEED)`)

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

// Storable by construction, and up to every limit: names of any characters but controls
// (`.` inside them, `*` and `\` for filters, `%` `?` `#` for URLs, any script, emoji); segments
// of exactly 255 bytes; 64 segments; paths of exactly 4096 bytes.
const char = fc.oneof(
  fc.constantFrom('.', '*', '\\', '%', '?', '#', '+', '&', ' ', 'é', '\u00a0', '\u202e', '中', '💩'),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
)
const name = fc.string({ unit: char, minLength: 1, maxLength: 8 }).filter((s) => !s.includes('/') && normalForm(`/${s}`).path === `/${s}`)
/** `name` repeated, then cut and padded to exactly `bytes` bytes (never inside a code point) */
const fill = (text: string, bytes: number): string => {
  const chars = Array.from(text)
  let out = ''
  for (let i = 0; ; i++) {
    const c = chars[i % chars.length]!
    if (Buffer.byteLength(out + c) > bytes) return out + 'a'.repeat(bytes - Buffer.byteLength(out))
    out += c
  }
}
const long = fc.tuple(name, fc.oneof(fc.constant(MAX_SEGMENT_BYTES), fc.integer({ min: 100, max: MAX_SEGMENT_BYTES }))).map(([n, b]) => fill(n, b))
const shallow = fc.array(fc.oneof(name, long), { minLength: 1, maxLength: 5 })
const deep = fc.integer({ min: MAX_SEGMENTS - 5, max: MAX_SEGMENTS - 1 }).chain((n) => fc.array(name, { minLength: n, maxLength: n }))
/** long segments after `root` up to MAX_PATH_BYTES, the last one cut to land on it exactly */
const full = (root: string) =>
  fc.array(long, { minLength: 20, maxLength: 20 }).map((segs) => {
    const out: string[] = []
    for (const seg of segs) {
      const left = MAX_PATH_BYTES - Buffer.byteLength(root + [...out, ''].join('/'))
      if (left <= 0) break
      out.push(Buffer.byteLength(seg) <= left ? seg : fill(seg, Math.min(left, MAX_SEGMENT_BYTES)))
    }
    return out
  })
const storableToLimits = fc
  .constantFrom('/pub/', '/priv/')
  .chain((root) => fc.oneof({ arbitrary: shallow, weight: 4 }, deep, full(root)).map((segs) => root + segs.join('/')))
  .filter((p) => normalForm(p).path === p)

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
    fc.property(fc.oneof(storable, storableToLimits), (path) => {
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
    { numRuns: 2000, seed },
  )
})

t.test('an exact filter takes a path exactly when storage holds it as it is', async (t) => {
  fc.assert(
    fc.property(rawPath, (raw) => {
      const normal = normalForm(raw).path
      const storedAsIs = normal === raw && !raw.endsWith('/')
      return refused(() => parseFilter(A + escaped(raw))) === !storedAsIs
    }),
    { numRuns: 2000, seed },
  )
  t.ok(refused(() => parseFilter(`${A}/pub/a\u0085b`)), 'a C1 character is refused by filters')
  t.equal(normalForm('/pub/a\u0085b').problem, 'control characters', 'and by storage')
  t.equal(normalForm('/pub/a\u009fb').problem, 'control characters')
  t.equal(normalForm('/pub/a\u00a0b').path, '/pub/a\u00a0b', 'U+00A0 is not a control character')
})

t.test('the generated paths reach every limit', async (t) => {
  const paths = fc.sample(storableToLimits, { numRuns: 300, seed: 1 })
  const segments = (p: string) => p.split('/').slice(1)
  t.ok(paths.some((p) => Buffer.byteLength(p) === MAX_PATH_BYTES), `paths of ${MAX_PATH_BYTES} bytes`)
  t.ok(paths.some((p) => segments(p).length === MAX_SEGMENTS), `paths of ${MAX_SEGMENTS} segments`)
  t.ok(paths.some((p) => segments(p).some((s) => Buffer.byteLength(s) === MAX_SEGMENT_BYTES)), `segments of ${MAX_SEGMENT_BYTES} bytes`)
  t.ok(paths.some((p) => segments(p).some((s) => s.includes('.'))), 'names with a .')
  t.ok(paths.some((p) => /[^\u0000-\u00ff]/.test(p)), 'characters beyond Latin-1')
  t.ok(paths.some((p) => p.startsWith('/priv/')), 'private paths')
})

t.test('over HTTP: whatever a PUT stored, an exact filter and a prefix of its folder follow live', async (t) => {
  const server = await startTestServer(t, { MAX_STREAMS_PER_IP: '1000' })
  await fc.assert(
    fc.asyncProperty(storableToLimits, fc.boolean(), async (path, anyUser) => {
      // a user of its own, so no earlier path is a file where this one needs a folder
      const owner = await newUser(server)
      const own = path.startsWith('/priv/')
      const folder = path.slice(0, path.lastIndexOf('/') + 1)
      const filters = [`${owner.user}${escaped(path)}`, `${anyUser && !own ? '*' : owner.user}${escaped(folder)}*`]
      const headers = { cookie: `${owner.user}=${owner.session}` } // for /priv/: the owner's session
      const streams = await Promise.all(filters.map((f) => RawStream.open(`${server.url}/subscribe?filter=${encodeURIComponent(f)}`, headers)))
      try {
        for (const s of streams) if (s.response.status !== 200) throw new Error(`${s.response.status} ${await s.response.text()}`)
        const res = await owner.request('PUT', path.split('/').map(encodeURIComponent).join('/'), 'x')
        if (res.status !== 201) throw new Error(`PUT answered ${res.status}: ${await res.text()}`)
        for (const [i, s] of streams.entries()) {
          const frames = await s.until((fs) => fs.some((f) => f.event === 'PUT'), 10_000)
          const ev = JSON.parse(frames.find((f) => f.event === 'PUT')!.data!) as { user: string; path: string }
          if (ev.user !== owner.user || ev.path !== path) throw new Error(`${filters[i]} got ${JSON.stringify(ev)}`)
        }
      } finally {
        for (const s of streams) s.close()
      }
    }),
    { seed, numRuns: 150 },
  )
  t.pass(`150 paths, each followed by both filters (replay with HEARTH_FUZZ_SEED=${seed})`)
})
