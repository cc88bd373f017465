import t from 'tap'
import { randomBytes } from 'node:crypto'
import { encodePublicKey } from '../src/auth/keys.js'
import { HearthError } from '../src/errors.js'
import { EVERYTHING, MAX_FILTERS, filterMatches, parseFilter, parseFilters } from '../src/subscriptions/filter.js'
import {
  authorizeStreamPaths,
  parseEventsStreamQuery,
  parseStreamCursor,
  resolveStreamCursors,
  streamFilters,
  streamPathMatches,
} from '../src/subscriptions/events-stream-query.js'

const key = () => encodePublicKey(randomBytes(32))
const A = key()
const B = key()

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof HearthError) return err.code
    throw err
  }
  return undefined
}

function failure(fn: () => unknown): { code: string; status: number; message: string } | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof HearthError) return { code: err.code, status: err.status, message: err.message }
    throw err
  }
  return undefined
}

t.test('the contract examples parse', async (t) => {
  const cases: [string, { user: string; path: string; prefix: boolean; text: string }][] = [
    [`${A}/*`, { user: A, path: '/', prefix: true, text: `${A}/*` }],
    [`${A}/pub/pubky.app/posts/*`, { user: A, path: '/pub/pubky.app/posts/', prefix: true, text: `${A}/pub/pubky.app/posts/*` }],
    ['*/pub/pubky.app/posts/*', { user: '*', path: '/pub/pubky.app/posts/', prefix: true, text: '*/pub/pubky.app/posts/*' }],
    ['*', { user: '*', path: '', prefix: true, text: '*' }],
    [`${A}/pub/pubky.app/profile.json`, { user: A, path: '/pub/pubky.app/profile.json', prefix: false, text: `${A}/pub/pubky.app/profile.json` }],
    [`${A}*`, { user: A, path: '', prefix: true, text: `${A}*` }],
    [A, { user: A, path: '', prefix: true, text: `${A}*` }],
    [`${A}/pub/pubky.app/po*`, { user: A, path: '/pub/pubky.app/po', prefix: true, text: `${A}/pub/pubky.app/po*` }],
    ['*/pub/x.json', { user: '*', path: '/pub/x.json', prefix: false, text: '*/pub/x.json' }],
    [`${A}/priv/app/*`, { user: A, path: '/priv/app/', prefix: true, text: `${A}/priv/app/*` }],
    [`${A}/pub/é/ünïcode.txt`, { user: A, path: '/pub/é/ünïcode.txt', prefix: false, text: `${A}/pub/é/ünïcode.txt` }],
    [`${A}/pub/..hidden*`, { user: A, path: '/pub/..hidden', prefix: true, text: `${A}/pub/..hidden*` }],
  ]
  for (const [text, want] of cases) t.same(parseFilter(text), want, text)
})

t.test('bad filters are InvalidFilter', async (t) => {
  const bad = [
    '',
    '**',
    '*pub/x',
    '*/pub/*/x',
    '*/pub/*x*',
    `${A}/pub/a*b`,
    `${A}pub/x`,
    'notakey/pub/x',
    `${A.slice(0, 51)}/pub/x`,
    `${A.slice(0, 51)}9/pub/x`,
    `${A}/pub/../x`,
    `${A}/pub/./x`,
    `${A}/pub//x`,
    `${A}/pub/x/..`,
    `${A}/pub/../*`,
    `${A}/pub/dir/`,
    `${A}/pub/a\nb`,
    `${A}/pub/a\u0000b*`,
    `${A}/pub/a\u0085b`,
    `${A}/pub/${'x'.repeat(256)}`,
    `${A}/pub/${'x'.repeat(256)}*`,
    `${A}/pub${'/abcdefgh'.repeat(512)}`,
    `pubky${A}/pub/x`,
    `${A}${'x'.repeat(5000)}`,
  ]
  for (const text of bad) t.equal(code(() => parseFilter(text)), 'InvalidFilter', JSON.stringify(text.slice(0, 70)))
  t.match(failure(() => parseFilter('*/a*b'))?.message, /\* may only end a filter/)
  t.equal(failure(() => parseFilter('*/a*b'))?.status, 400)
})

t.test('limits: 4096-byte paths, 255-byte segments and 64 segments are fine', async (t) => {
  const path = `/pub/${'a'.repeat(255)}`
  t.equal(parseFilter(`${A}${path}`).path, path)
  const long = '/pub' + `/${'b'.repeat(64)}`.repeat(62) + `/${'c'.repeat(61)}`
  t.equal(Buffer.byteLength(long), 4096)
  t.equal(parseFilter(`${A}${long}`).path, long)
  t.equal(code(() => parseFilter(`${A}${long}x`)), 'InvalidFilter')
  const deepest = '/pub' + '/d'.repeat(63)
  t.equal(parseFilter(`${A}${deepest}`).path, deepest, '64 segments')
  t.equal(parseFilter(`${A}${deepest.slice(0, -1)}*`).path, deepest.slice(0, -1), 'a prefix ending in the 64th')
  t.match(failure(() => parseFilter(`${A}${deepest}/e`))?.message, /more than 64 segments/)
  t.equal(code(() => parseFilter(`${A}${deepest}/e*`)), 'InvalidFilter', 'a prefix whose partial segment is the 65th')
})

t.test('a literal * or \\ is escaped; everything else about * stays refused', async (t) => {
  t.same(parseFilter(`${A}/pub/a\\*b`), { user: A, path: '/pub/a*b', prefix: false, text: `${A}/pub/a\\*b` })
  t.same(parseFilter(`${A}/pub/a\\*`), { user: A, path: '/pub/a*', prefix: false, text: `${A}/pub/a\\*` }, 'exactly a path ending in *')
  t.same(parseFilter(`${A}/pub/a\\**`), { user: A, path: '/pub/a*', prefix: true, text: `${A}/pub/a\\**` }, 'by prefix')
  t.same(parseFilter(`*/pub/x\\\\y`), { user: '*', path: '/pub/x\\y', prefix: false, text: `*/pub/x\\\\y` }, 'a literal backslash')
  for (const bad of [`${A}/pub/a\\b`, `${A}/pub/a\\`, `${A}/pub/a\\**x`, `${A}/pub/a\\*b*c`]) {
    t.equal(code(() => parseFilter(bad)), 'InvalidFilter', bad.slice(52))
  }
})

t.test('a stream takes up to 64 filters; none means everything', async (t) => {
  t.same(parseFilters([]), [EVERYTHING])
  const many = Array.from({ length: MAX_FILTERS }, (_, i) => `${A}/pub/${i}`)
  t.equal(parseFilters(many).length, 64)
  t.equal(code(() => parseFilters([...many, '*'])), 'TooManyFilters')
  t.equal(failure(() => parseFilters([...many, '*']))?.status, 400)
  t.same(
    parseFilters([A, `${A}*`, '*/pub/x']).map((f) => f.text),
    [`${A}*`, '*/pub/x'],
    'duplicates collapse by canonical text',
  )
  t.equal(code(() => parseFilters(['*', 'bad'])), 'InvalidFilter')
})

t.test('filterMatches: the reference semantics', async (t) => {
  const ev = { user: A, path: '/pub/pubky.app/posts/1' }
  t.ok(filterMatches(parseFilter('*'), ev))
  t.ok(filterMatches(parseFilter(A), ev))
  t.ok(filterMatches(parseFilter(`${A}/pub/pubky.app/po*`), ev))
  t.ok(filterMatches(parseFilter('*/pub/pubky.app/posts/1'), ev))
  t.notOk(filterMatches(parseFilter(`${B}/*`), ev))
  t.notOk(filterMatches(parseFilter(`${A}/pub/pubky.app/posts`), ev))
  t.notOk(filterMatches(parseFilter(`${A}/pub/pubky.app/posts/1/*`), ev))
})

t.test('events-stream query: what parses', async (t) => {
  const q = parseEventsStreamQuery(`user=${A}&user=${B}:42&path=/pub/files/&path=pub/x.txt&path=&limit=10&live=1&foo=bar`)
  t.same(q, {
    users: [{ user: A }, { user: B, cursor: '42' }],
    paths: [
      { path: '/pub/files/', prefix: true },
      { path: '/pub/x.txt', prefix: false },
    ],
    limit: 10,
    live: true,
    reverse: false,
  })
  const r = parseEventsStreamQuery(new URLSearchParams({ user: A, reverse: 'true', live: 'yes' }))
  t.same([r.live, r.reverse, r.limit, r.paths], [false, true, undefined, []])
  t.equal(parseEventsStreamQuery(`user=${A}&live=true&live=0`).live, false, 'the last live wins')
  t.equal(parseEventsStreamQuery(`user=${A}&limit=%2B007`).limit, 7, 'Rust u16 parsing: + and leading zeros')
  t.equal(parseEventsStreamQuery(`user=${A}&limit=65535`).limit, 65535)
  t.same(parseEventsStreamQuery(`user=&user=${A}:`).users, [{ user: A, cursor: '' }], 'empty users skipped')
  t.same(parseEventsStreamQuery(`user=${A}:1:2`).users, [{ user: A, cursor: '1:2' }], 'split at the first colon')
  t.same(parseEventsStreamQuery(`user=${A}&path=%2Fpub%2Fa%20b%2F`).paths, [{ path: '/pub/a b/', prefix: true }])
  t.same(parseEventsStreamQuery(`user=${A}&path=/pub/a/../b/./c//d`).paths, [{ path: '/pub/b/c/d', prefix: false }])
  t.same(parseEventsStreamQuery(`user=${A}&path=/pub/a/..`).paths, [{ path: '/pub/', prefix: true }])
})

t.test('events-stream query: every upstream error text', async (t) => {
  const cases: [string, string, number, string][] = [
    [`user=${A}&limit=abc`, 'InvalidQuery', 400, 'Invalid limit: abc'],
    [`user=${A}&limit=70000`, 'InvalidQuery', 400, 'Invalid limit: 70000'],
    [`user=${A}&limit=-1`, 'InvalidQuery', 400, 'Invalid limit: -1'],
    [`user=${A}&limit=+1`, 'InvalidQuery', 400, 'Invalid limit:  1'],
    [`user=${A}&limit=`, 'InvalidQuery', 400, 'Invalid limit: '],
    [`user=${A}&limit=0`, 'InvalidQuery', 400, 'limit must be at least 1'],
    [`limit=x&live=true&reverse=true`, 'InvalidQuery', 400, 'Invalid limit: x'],
    [`user=${A}&live=true&reverse=1`, 'InvalidQuery', 400, 'Cannot use live mode with reverse ordering'],
    [`user=bad&live=true&reverse=true`, 'InvalidQuery', 400, 'Cannot use live mode with reverse ordering'],
    [`user=invalid_key_not_zbase32`, 'InvalidPublicKey', 400, 'Invalid public key: invalid_key_not_zbase32'],
    [`user=${A}&user=nope:5`, 'InvalidPublicKey', 400, 'Invalid public key: nope'],
    [`user=pubky${A}`, 'InvalidPublicKey', 400, `Invalid public key: pubky${A}`],
    [`user=pk:${A}`, 'InvalidPublicKey', 400, 'Invalid public key: pk'],
    [`path=/pub/`, 'InvalidQuery', 400, 'user parameter is required'],
    [``, 'InvalidQuery', 400, 'user parameter is required'],
    [`user=&user=`, 'InvalidQuery', 400, 'user parameter is required'],
    [Array.from({ length: 51 }, () => `user=${A}`).join('&'), 'InvalidQuery', 400, 'Too many users. Maximum allowed: 50'],
    [`user=${A}&path=/..`, 'InvalidQuery', 400, 'Invalid path: /..'],
    [`user=${A}&path=pub/../..`, 'InvalidQuery', 400, 'Invalid path: /pub/../..'],
    [`user=${A}&path=/pub/a%01`, 'InvalidQuery', 400, 'Invalid path: /pub/a\u0001'],
    [`user=${A}&path=/pub/${'x'.repeat(256)}`, 'InvalidQuery', 400, `Invalid path: /pub/${'x'.repeat(256)}`],
  ]
  for (const [query, wantCode, status, message] of cases) {
    t.same(failure(() => parseEventsStreamQuery(query)), { code: wantCode, status, message }, query.slice(0, 80))
  }
  t.ok(parseEventsStreamQuery(Array.from({ length: 50 }, () => `user=${A}`).join('&')), '50 users are fine')
})

t.test('events-stream paths: authorisation as upstream main', async (t) => {
  const own = { user: A, canRead: (p: string) => p.startsWith('/priv/app/') }
  const auth = (query: string, session?: typeof own) => authorizeStreamPaths(parseEventsStreamQuery(query), session)
  t.same(auth(`user=${A}`), [{ path: '/pub/', prefix: true }], 'no path means /pub/')
  t.same(auth(`user=${A}&path=/pub/x/&path=/priv/app/`, own), [
    { path: '/pub/x/', prefix: true },
    { path: '/priv/app/', prefix: true },
  ])
  const cases: [string, typeof own | undefined, string, number, string][] = [
    [`user=${A}&path=/other/`, own, 'Forbidden', 403, "Reading from directories other than '/pub/' and '/priv/' is forbidden"],
    [`user=${A}&path=/pub`, undefined, 'Forbidden', 403, "Reading from directories other than '/pub/' and '/priv/' is forbidden"],
    [`user=${A}&path=/priv/app/`, undefined, 'Unauthorized', 401, 'Authentication required to read private storage'],
    [`user=${A}&user=${B}&path=/priv/app/`, own, 'Forbidden', 403, 'A private read must be scoped to exactly one user'],
    [`user=${A}&user=${A}&path=/priv/app/`, own, 'Forbidden', 403, 'A private read must be scoped to exactly one user'],
    [`user=${B}&path=/priv/app/`, own, 'Forbidden', 403, 'Session user does not match target tenant'],
    [`user=${A}&path=/priv/other/`, own, 'Forbidden', 403, 'Session does not have read access to path'],
  ]
  for (const [query, session, wantCode, status, message] of cases) {
    t.same(failure(() => auth(query, session)), { code: wantCode, status, message }, query.slice(60))
  }
})

t.test('events-stream cursors: existence first, then the cursor, user by user', async (t) => {
  const known = new Set([A])
  const users = parseEventsStreamQuery(`user=${A}:7&user=${A}:%2B9&user=${A}`).users
  const got = await resolveStreamCursors(users, (u) => known.has(u))
  t.same([...got], [[A, undefined]], 'duplicates: the last cursor wins')
  const cursors = await resolveStreamCursors([{ user: A, cursor: '000000000002M' }, { user: A, cursor: '43' }], () => true)
  t.same([...cursors], [[A, 43n]])
  await t.rejects(resolveStreamCursors([{ user: B, cursor: 'junk' }], (u) => known.has(u)), {
    code: 'NotFound',
    status: 404,
    message: 'Not Found',
  })
  await t.rejects(resolveStreamCursors([{ user: A, cursor: 'abc123xyz' }, { user: B }], async (u) => known.has(u)), {
    code: 'InvalidCursor',
    status: 400,
    message: 'Invalid cursor: abc123xyz',
  })
  for (const bad of ['-100', '', 'abc123xyz', '18446744073709551616', '1.5', ' 1', '000000000002Z']) {
    t.same(failure(() => parseStreamCursor(bad)), { code: 'InvalidCursor', status: 400, message: `Invalid cursor: ${bad}` })
  }
  t.equal(parseStreamCursor('999999999'), 999999999n, 'past the head is fine')
  t.equal(parseStreamCursor('18446744073709551615'), (1n << 64n) - 1n)
  t.equal(parseStreamCursor('000000000002M'), 42n, 'an id')
  t.equal(parseStreamCursor('0000000000001'), 1n, '13 digits are decimal first, as upstream')
})

t.test('events-stream paths match as upstream PathFilter', async (t) => {
  const paths = [
    { path: '/priv/app/', prefix: true },
    { path: '/pub/file', prefix: false },
  ]
  t.ok(streamPathMatches(paths, '/priv/app/x'))
  t.ok(streamPathMatches(paths, '/priv/app/sub/y'))
  t.notOk(streamPathMatches(paths, '/priv/app-evil/x'))
  t.ok(streamPathMatches(paths, '/pub/file'))
  t.notOk(streamPathMatches(paths, '/pub/file/x'))
  t.notOk(streamPathMatches(paths, '/pub/fil'))
  t.same(
    streamFilters([A, A, B], paths).map((f) => f.text),
    [`${A}/priv/app/*`, `${A}/pub/file`, `${B}/priv/app/*`, `${B}/pub/file`],
  )
  const pathOf = (p: string) => parseEventsStreamQuery(`user=${A}&path=${encodeURIComponent(p)}`).paths
  t.same(pathOf('/.'), [{ path: '/', prefix: true }], 'normalised by the storage rules')
  t.same(pathOf('//'), [{ path: '/', prefix: true }])
  t.same(pathOf('x'), [{ path: '/x', prefix: false }], 'a / is prepended')
  t.same(pathOf('/pub/a/.'), [{ path: '/pub/a/', prefix: true }], 'a trailing . names the folder, as in storage')
})
