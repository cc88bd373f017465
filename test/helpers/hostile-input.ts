import fc from 'fast-check'
import { randomKeypair, sign, type Keypair } from '../../src/auth/keys.js'
import { signAuthToken } from '../../src/auth/token.js'
import { idOf } from 'hearth-homeserver-client/id'
import { MAX_PATH_BYTES } from '../../src/paths.js'
import { PathMaker } from './long-paths.js'

/**
 * Generators of hostile requests. A request is a recipe: its body may depend on the clock
 * (AuthTokens) or on tokens sent before (replays), so it is made at send time.
 */
export interface Actors {
  /** victims: their sessions are never sent under their own names */
  alice: { user: string; secret: string }
  bob: { user: string; secret: string }
  /** the attacker, with a root session of its own */
  carol: { user: string; secret: string; keypair: Keypair }
  /** a user whose session only the checked requests carry, so nothing signs it out */
  dave: { user: string; secret: string }
  /** another user only the checked requests write for: small files beside Dave's longest paths */
  erin: { user: string; secret: string }
  adminPassword: string
}

export interface HostileRequest {
  /** `socket`: raw bytes on a socket, for what node:http refuses to send */
  transport: 'http' | 'socket'
  method: string
  /** path and query, sent verbatim */
  target: string
  headers: [string, string][]
  body?: TokenRecipe | Uint8Array
  /** a request whose answer is known: the statuses it may get */
  expect?: number[]
  /** once answered as expected, a GET of the same target with the same headers must return the body */
  readBack?: boolean
  /** a checked request sent at the same moment, another user's write that must go through too */
  alongside?: HostileRequest
}

export type TokenRecipe = { token: TokenKind; who: 'carol' | 'fresh'; caps: string; skewS: number }
type TokenKind = 'valid' | 'truncated' | 'version' | 'namespace' | 'resigned64' | 'replay' | 'trailing' | 'varint' | 'random'

const Z32 = 'ybndrfg8ejkmcpqxot1uwisza345h769'

export function hostileRequest(a: Actors): fc.Arbitrary<HostileRequest> {
  // keys nobody signed up with; drawn from a pool so generation stays cheap
  const fresh = fc.constantFrom(...Array.from({ length: 16 }, () => randomKeypair().z32))
  const junkKey = fc.oneof(
    fc.string({ unit: fc.constantFrom(...Z32), minLength: 51, maxLength: 53 }),
    fc.constantFrom(a.alice.user.toUpperCase(), a.alice.user.slice(0, -1) + 'o', `${a.alice.user}.`, `${a.alice.user}:1`, '', 'localhost'),
    fc.string({ maxLength: 60 }),
  )
  const user = fc.oneof(
    { arbitrary: fc.constantFrom(a.alice.user, a.bob.user, a.carol.user), weight: 6 },
    { arbitrary: fresh, weight: 1 },
    { arbitrary: junkKey, weight: 2 },
  )
  const segment = fc.oneof(
    { arbitrary: fc.stringMatching(/^[a-z0-9._-]{1,12}$/), weight: 8 },
    { arbitrary: fc.constantFrom('..', '.', '', '%2e%2e', '%2E.', '.%2e', '%2f', '%2F..%2F', '%00', '%0a', '%ff', '%', '%zz', '%c0%ae', '..%5c', '*', '~', ';', '\\', 'priv', 'pub', 'hush', '%252e%252e', '%E2%80%AE', '%F0%9F%92%A9', 'a%C2%85b', '%C2%80', '%c2%9f', '%C2%A0'), weight: 6 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }).map(encodeURIComponent), weight: 2 },
    { arbitrary: fc.integer({ min: 250, max: 300 }).map((n) => 'x'.repeat(n)), weight: 1 },
  )
  const tail = fc.array(segment, { maxLength: 6 }).map((s) => s.join('/'))
  const root = fc.oneof(
    { arbitrary: fc.constantFrom('/pub/', '/priv/', '/pub/a/', '/priv/dir/'), weight: 8 },
    { arbitrary: user.map((u) => `/storage/${u}/pub/`), weight: 2 },
    { arbitrary: user.map((u) => `/storage/${u}/priv/`), weight: 2 },
    { arbitrary: user.map((u) => `/storage/${u}/`), weight: 1 },
    { arbitrary: fc.constantFrom('/', '//pub/', '/PUB/', '/pub', '/priv', '/storage/', '/%70ub/', '/pub/../priv/', '/a/../priv/', '/.well-known/', '/admin/'), weight: 2 },
  )
  const huge = fc.integer({ min: 4000, max: 20000 }).map((n) => `/pub/${'a/'.repeat(n / 2)}`)
  // around the 64-segment bound, and the review's 2,040 one-character segments
  const deep = fc.oneof(fc.integer({ min: 60, max: 70 }), fc.constant(2040)).map((n) => `/pub/${'d/'.repeat(n - 2)}f`)
  const storagePath = fc.oneof(
    { arbitrary: fc.tuple(root, tail).map(([r, t]) => r + t), weight: 20 },
    { arbitrary: huge, weight: 1 },
    { arbitrary: deep, weight: 1 },
  )

  const cursorish = fc.oneof(
    fc.nat({ max: 400 }).map(String),
    fc.constantFrom('', '-1', '+5', '1e3', '0x10', '18446744073709551615', '18446744073709551616', '99999999999999999999999', '1.5', ' 1', '00', 'NaN', 'null'),
    fc.nat({ max: 400 }).map((n) => idOf(n)),
    fc.constantFrom('0000000000001', 'ZZZZZZZZZZZZZ', 'ZZZZZZZZZZZZY', '000000000000I', 'abcdefghijklm'),
    fc.string({ maxLength: 20 }),
  )
  const filter = fc.oneof(
    fc.tuple(fc.oneof(user, fc.constant('*')), fc.oneof(storagePath, fc.constantFrom('', '*', '/*', '/priv/*', '/pub/*', '/priv/hush*', '/pub/nothing', '/pub/a\u0085b', '/pub/a\\*', '/pub/\\'))).map(([u, p]) => u + p),
    fc.string({ maxLength: 30 }),
  )
  const flag = fc.constantFrom('true', 'false', '1', '0', '', 'yes', 'TRUE')
  const qv = (k: string, v: fc.Arbitrary<string>) => v.map((x) => `${k}=${encodeURIComponent(x)}`)
  const param = fc.oneof(
    qv('limit', fc.oneof(fc.nat({ max: 2000 }).map(String), fc.constantFrom('0', '-1', '65536', '1e9', 'abc', ''))),
    qv('cursor', cursorish),
    qv('lastSeq', cursorish),
    qv('reverse', flag),
    qv('shallow', flag),
    qv('live', fc.constantFrom('false', 'false', '0', 'true', 'x')),
    qv('filter', filter),
    qv('user', fc.tuple(user, fc.option(cursorish)).map(([u, c]) => (c === null ? u : `${u}:${c}`))),
    qv('path', fc.oneof(storagePath, fc.constantFrom('/priv/', 'priv/', '/pub/', '', '/'))),
    qv('pubky-host', user),
    qv('signup_token', fc.constantFrom('AAAA-AAAA-AAAA', '', 'x'.repeat(70), '0000-0000-000')),
    fc.constantFrom('shallow', 'reverse', 'live', '%', '%zz=1', '=', '&&', 'filter', 'a=%ff', 'limit=1&limit=2'),
  )
  const query = fc.array(param, { maxLength: 5 }).map((ps) => (ps.length === 0 ? '' : `?${ps.join('&')}`))

  const target = fc.oneof(
    { arbitrary: fc.tuple(storagePath, query).map(([p, q]) => p + q), weight: 10 },
    { arbitrary: query.map((q) => `/events/${q}`), weight: 3 },
    { arbitrary: finite(query).map((q) => `/subscribe${q}`), weight: 4 },
    { arbitrary: fc.tuple(filter, finite(query)).map(([f, q]) => `/subscribe/${f.replace(/^\//, '')}${q}`), weight: 2 },
    { arbitrary: finite(query).map((q) => `/events-stream${q}`), weight: 4 },
    // one victim followed from a cursor inside the log, past its private events
    { arbitrary: fc.tuple(fc.constantFrom(a.alice.user, a.bob.user), fc.constantFrom('', '/*', '/pub/*', '/pub/nothing', '/priv/*', '/priv/stretch/1'), fc.nat({ max: 400 }))
      .map(([u, p, n]) => `/subscribe?filter=${encodeURIComponent(u + p)}&lastSeq=${n}&live=false`), weight: 2 },
    { arbitrary: fc.nat({ max: 400 }).map((n) => `/events/?cursor=${n}`), weight: 1 },
    { arbitrary: query.map((q) => `/info${q}`), weight: 1 },
    { arbitrary: query.map((q) => `/signup${q}`), weight: 3 },
    { arbitrary: query.map((q) => `/session${q}`), weight: 3 },
    { arbitrary: query.map((q) => `/admin/generate_signup_token${q}`), weight: 1 },
    { arbitrary: fc.constantFrom('/admin/', '/admin/x', '/events', '/events-stream/', '/subscribe/', '/info/', '/favicon.ico', '*', '/\\', '/%', '/?', '/#x'), weight: 1 },
  )

  const secrets = [a.alice.secret, a.bob.secret, a.carol.secret]
  const cookiePart = fc.oneof(
    // carol's own session, on her own storage
    fc.constant(`${a.carol.user}=${a.carol.secret}`),
    // someone's secret under someone else's name (never a victim's own under its own name)
    fc.tuple(fc.constantFrom(a.alice.user, a.bob.user, a.carol.user), fc.constantFrom(...secrets))
      .filter(([n, s]) => !(n === a.alice.user && s === a.alice.secret) && !(n === a.bob.user && s === a.bob.secret))
      .map(([n, s]) => `${n}=${s}`),
    fc.tuple(user, fc.oneof(fc.stringMatching(/^[0-9A-Z]{26}$/), fc.string({ maxLength: 30 }))).map(([n, s]) => `${n}=${s}`),
    fc.string({ maxLength: 40 }),
  )
  const header = fc.oneof(
    fc.tuple(fc.constant('pubky-host'), fc.oneof(user, fc.string({ maxLength: 60 }))),
    fc.tuple(fc.constant('host'), fc.oneof(user, user.map((u) => `${u}:6286`), fc.constantFrom('localhost', '127.0.0.1:1', '[::1]', '', 'a'.repeat(300)), fc.string({ maxLength: 30 }))),
    fc.tuple(fc.constant('cookie'), fc.array(cookiePart, { minLength: 1, maxLength: 4 }).map((ps) => ps.join('; '))),
    fc.tuple(fc.constant('last-event-id'), cursorish),
    fc.tuple(fc.constant('if-none-match'), fc.constantFrom('*', '"x"', 'W/"x"', '', ',,,', 'x'.repeat(1000))),
    fc.tuple(fc.constant('if-modified-since'), fc.constantFrom('Thu, 01 Jan 1970 00:00:00 GMT', 'yesterday', '', '9999-99-99')),
    fc.tuple(fc.constant('content-type'), fc.constantFrom('application/json', 'text/plain', 'multipart/form-data; boundary=x', '', '*/*', 'application/x-www-form-urlencoded')),
    fc.tuple(fc.constant('x-admin-password'), fc.oneof(fc.string({ maxLength: 20 }), fc.constant(a.adminPassword))),
    fc.tuple(fc.constant('origin'), fc.constantFrom('https://evil.example', 'null', '')),
    fc.tuple(fc.constantFrom('x-forwarded-for', 'accept', 'range', 'accept-encoding', 'transfer-encoding-x'), fc.string({ maxLength: 40 })),
  )

  const token: fc.Arbitrary<TokenRecipe> = fc.record({
    token: fc.constantFrom<TokenKind>('valid', 'valid', 'truncated', 'version', 'namespace', 'resigned64', 'replay', 'replay', 'trailing', 'varint', 'random'),
    who: fc.constantFrom<'carol' | 'fresh'>('carol', 'fresh'),
    caps: fc.oneof(fc.constantFrom('/:rw', '/pub/:r', '/pub/a/:rw', '/priv/:rw', '', '/:x', 'pub:rw', '/a:rw:rw', '/,/', '/:rw,'), fc.string({ maxLength: 40 })),
    skewS: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.integer({ min: -400, max: 400 }), weight: 1 }, { arbitrary: fc.constantFrom(-1e9, 1e9, -Date.now() / 1000), weight: 1 }),
  })
  const body = fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 4 },
    { arbitrary: fc.uint8Array({ maxLength: 2048 }), weight: 3 },
    { arbitrary: fc.string({ maxLength: 200 }).map((s) => new TextEncoder().encode(s)), weight: 1 },
    { arbitrary: fc.integer({ min: 65_000, max: 70_000 }).map((n) => new Uint8Array(n).fill(7)), weight: 1 },
    { arbitrary: token, weight: 4 },
  )
  const method = fc.oneof(
    { arbitrary: fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'PUT', 'PUT', 'DELETE', 'POST', 'POST'), weight: 10 },
    { arbitrary: fc.constantFrom('OPTIONS', 'PATCH', 'PROPFIND', 'TRACE', 'CONNECT', 'FOO'), weight: 1 },
  )
  const http = fc.record({
    transport: fc.constant<'http'>('http'),
    method,
    target: target.map(pathSafe),
    // most requests name a real user and many carry Carol's session, so they get past the
    // first checks and reach the storage, listing and feed code behind them
    headers: fc.tuple(
      fc.option(user.map((u): [string, string] => ['pubky-host', u]), { freq: 2, nil: undefined }),
      fc.option(fc.constant<[string, string]>(['cookie', `${a.carol.user}=${a.carol.secret}`]), { freq: 2, nil: undefined }),
      fc.array(header, { maxLength: 4 }),
    ).map(([host, own, hs]) => [...(host ? [host] : []), ...(own ? [own] : []), ...hs].map(([k, v]) => [k, httpSafe(v)] as [string, string])),
    body,
  }).map((r) => (r.method === 'CONNECT' ? { ...r, method: 'GET' } : r))
  // bytes node:http will not send: raw controls and UTF-8 in the path, broken header lines
  const rawJunk = fc.oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('\u0000', '\t', ' ', '\u007f', '\r', '\n', 'é', '\u202e', '%00'))
  const socket = fc.record({
    transport: fc.constant<'socket'>('socket'),
    method: fc.oneof(method, fc.string({ maxLength: 8 })),
    target: fc.tuple(target, rawJunk, fc.nat({ max: 30 })).map(([t, j, at]) => t.slice(0, at) + j + t.slice(at)),
    headers: fc.array(fc.oneof(header, fc.tuple(fc.string({ maxLength: 12 }), rawJunk)), { maxLength: 4 }),
    body: fc.option(fc.uint8Array({ maxLength: 256 }), { nil: undefined }),
  })
  return fc.oneof({ arbitrary: http, weight: 9 }, { arbitrary: socket, weight: 1 }, { arbitrary: checkedRequest(a), weight: 1 })
}

/**
 * Requests whose answer is known, on Dave's storage with Dave's session (which nothing else
 * sends, so nothing signs it out): paths around the 64-segment bound, C1 characters, his
 * cookie among stale ones of the same name, and the longest paths, read back, with Erin's
 * writes beside them.
 */
function checkedRequest(a: Actors): fc.Arbitrary<HostileRequest> {
  const dave = `${a.dave.user}=${a.dave.secret}`
  const put = (target: string, cookie: string, expect: number[]): HostileRequest =>
    ({ transport: 'http', method: 'PUT', target, headers: [['pubky-host', a.dave.user], ['cookie', cookie]], body: new Uint8Array([1]), expect })
  // a folder no generated path names, so no other request makes a file of it
  const deep = fc.integer({ min: 60, max: 70 }).map((n) => put(`/pub/deep~1/${'d/'.repeat(n - 3)}f`, dave, n <= 64 ? [201] : [400]))
  const c1 = fc.constantFrom('%C2%85', '%C2%80', '%c2%9f', '%C2%9B').map((c) => put(`/pub/c1/a${c}b`, dave, [400]))
  const c1Filter = fc.constantFrom('%C2%85', '%C2%80', '%C2%9F').map((c): HostileRequest =>
    ({ transport: 'http', method: 'GET', target: `/subscribe?filter=${a.dave.user}%2Fpub%2Fa${c}b&live=false`, headers: [], expect: [400] }))
  const stale = fc.oneof(
    fc.constantFrom(a.alice.secret, a.bob.secret, a.carol.secret, '', 'x', 'Z'.repeat(26)),
    fc.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/),
  ).map((secret) => `${a.dave.user}=${secret}`)
  const cookies = fc.tuple(fc.array(stale, { minLength: 1, maxLength: 3 }), fc.nat()).map(([others, at]) => {
    const all = [...others]
    all.splice(at % (others.length + 1), 0, dave)
    return all.join('; ')
  })
  const duplicate = fc.tuple(cookies, fc.boolean(), fc.nat({ max: 50 })).map(([cookie, write, i]): HostileRequest =>
    write ? put(`/pub/dup/${i}`, cookie, [201]) : { transport: 'http', method: 'GET', target: '/session', headers: [['pubky-host', a.dave.user], ['cookie', cookie]], expect: [200] })
  // SPEC §2's longest path, of random letters and wide characters (nothing to compress), in a
  // folder of Dave's no generated path names; Erin writes beside it in the same moment
  const erin = `${a.erin.user}=${a.erin.secret}`
  const longest = fc.tuple(fc.noBias(fc.nat()), fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat({ max: 50 })).map(([seed, body, i]): HostileRequest => {
    const path = new PathMaker(seed).path('/pub/long~1', MAX_PATH_BYTES)
    const target = path.split('/').map(encodeURIComponent).join('/')
    const beside: HostileRequest = { transport: 'http', method: 'PUT', target: `/pub/beside/${i}`, headers: [['pubky-host', a.erin.user], ['cookie', erin]], body: new Uint8Array([2]), expect: [201] }
    return { ...put(target, dave, [201]), body, readBack: true, alongside: beside }
  })
  return fc.oneof(deep, c1, c1Filter, duplicate, longest)
}

/** Mostly streams that end by themselves; the rest are live and cut short by the sender. */
function finite(query: fc.Arbitrary<string>): fc.Arbitrary<string> {
  return fc.tuple(query, fc.nat({ max: 3 })).map(([q, n]) => (n === 0 ? q : `${q}${q ? '&' : '?'}live=false&limit=${n}`))
}

/** node:http refuses a path with spaces, controls or characters past 0xff: percent-encode them. */
function pathSafe(target: string): string {
  return target.replace(/[^\u0021-\u007e]/gu, (c) => encodeURIComponent(c))
}

/** node:http refuses header values with controls or characters past 0xff: replace them. */
function httpSafe(v: string): string {
  return v.replace(/[^\t\u0020-\u007e\u0080-\u00ff]/g, '?')
}

/** Remembers the last valid tokens sent, for replays. */
export class TokenMaker {
  readonly #carol: Keypair
  readonly #sent: Uint8Array[] = []

  constructor(carol: Keypair) {
    this.#carol = carol
  }

  make(r: TokenRecipe): Uint8Array {
    const kp = r.who === 'carol' ? this.#carol : randomKeypair()
    const now = Date.now() + r.skewS * 1000
    if (r.token === 'replay' && this.#sent.length > 0) return this.#sent[Math.floor(Math.random() * this.#sent.length)]!
    if (r.token === 'random') return crypto.getRandomValues(new Uint8Array(Math.floor(Math.random() * 200)))
    const t = signAuthToken(kp, r.caps.replace(/[^\u0000-\u00ff]/g, ''), Math.max(0, now))
    switch (r.token) {
      case 'truncated':
        return t.subarray(0, Math.floor(Math.random() * t.length))
      case 'version':
        return patched(t, 74, 1 + Math.floor(Math.random() * 255))
      case 'namespace':
        return patched(t, 64 + Math.floor(Math.random() * 10), 0x21)
      case 'resigned64': {
        const copy = Uint8Array.from(t)
        copy.set(sign(copy.subarray(64), kp.secretKey), 0)
        return copy
      }
      case 'trailing':
        return Uint8Array.from([...t, 0, 1, 2])
      case 'varint':
        return Uint8Array.from([...t.subarray(0, 115), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
      default:
        if (this.#sent.length > 64) this.#sent.shift()
        this.#sent.push(t)
        return t
    }
  }
}

function patched(t: Uint8Array, at: number, value: number): Uint8Array {
  const copy = Uint8Array.from(t)
  copy[at] = value
  return copy
}
