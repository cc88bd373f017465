import { pathToFileURL } from 'node:url'
import type { Filter } from '../src/subscriptions/filter.js'
import { SubscriptionTables } from '../src/subscriptions/tables.js'
import { seededRandom } from '../test/helpers/random.js'

/**
 * Match cost per event with 10 and with 100,000 registered filters.
 *
 * 1,000 writers produce events under `/pub/<app>/<folder>/<id>`. Ten filters follow them
 * (`*` folders, a mid-segment prefix, whole users, one file). The large table holds those ten
 * plus 99,990 random filters of other users (exact files, folders, mid-segment prefixes, a
 * few `*` files) that these events never match. Same events, same matches: the ratio shows
 * what the other subscriptions cost each event, which a scan would multiply by 10,000.
 *
 * Also printed, not part of the result: the extra filters placed on the writers themselves,
 * so every event finds ~100 filters of its user to look through; there the cost grows with
 * the lookups that now find something and with cache misses, not with a scan.
 */
export async function benchMatch(): Promise<{ perEventNs10: number; perEventNs100k: number; ratio: number }> {
  const { writers, others, followed, events, extra } = matchWorkload()
  const small = tablesOf(followed)
  const [best10, best100k] = compare(small, tablesOf([...followed, ...extra(others, 99_990)]), events)
  const [dense10, dense] = compare(small, tablesOf([...followed, ...extra(writers, 99_990)]), events)
  const result = { perEventNs10: round(best10), perEventNs100k: round(best100k), ratio: round(best100k / best10) }
  console.log(`match, 10 filters:                    ${result.perEventNs10} ns/event`)
  console.log(`match, 100,000 filters:               ${result.perEventNs100k} ns/event`)
  console.log(`ratio:                                ${result.ratio} (goal ≤ 1.5)`)
  console.log(`(100,000 filters on the writers only: ${round(dense)} ns/event, ratio ${round(dense / dense10)})`)
  return result
}

export interface MatchWorkload {
  /** the 1,000 users who write the events */
  writers: string[]
  /** 100,000 users who never write */
  others: string[]
  /** ten filters that follow the writers */
  followed: Filter[]
  /** 50,000 events of the writers */
  events: Ev[]
  /** `n` random filters (exact files, folders, mid-segment prefixes, a few `*` files) of these users */
  extra(users: readonly string[], n: number): Filter[]
}

/** The events and filters described above, drawn from a fixed seed. */
export function matchWorkload(): MatchWorkload {
  const rand = seededRandom(42)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
  const apps = ['pubky.app', 'mapky', 'eventky', 'notes', 'pubky.app-dev']
  const folders = ['posts', 'profile', 'follows', 'tags', 'bookmarks', 'files', 'blobs', 'mutes', 'feeds', 'last_read']
  const folder = () => `/pub/${pick(apps)}/${pick(folders)}/`
  const file = () => `${folder()}${Math.floor(rand() * 1e12).toString(36)}`
  const randomFilter = (user: string): Filter => {
    const r = rand()
    if (r < 0.01) return filter('*', file(), false)
    if (r < 0.45) return filter(user, file(), false)
    if (r < 0.85) return filter(user, folder(), true)
    return filter(user, folder().slice(0, -3), true)
  }

  const writers = Array.from({ length: 1_000 }, () => randomKey(rand))
  const others = Array.from({ length: 100_000 }, () => randomKey(rand))
  const followed: Filter[] = [
    filter('*', '/pub/pubky.app/posts/', true),
    filter('*', '/pub/mapky/', true),
    filter('*', '/pub/eventky/fee', true),
    filter('*', '/pub/pubky.app/profile.json', false),
    filter(writers[0]!, '/', true),
    filter(writers[1]!, '', true),
    filter(writers[2]!, '/pub/notes/', true),
    filter(writers[3]!, '/pub/pubky.app/ta', true),
    filter(writers[4]!, '/pub/pubky.app/', true),
    filter(writers[5]!, '/pub/pubky.app/profile.json', false),
  ]
  const events = Array.from({ length: 50_000 }, () => ({ user: pick(writers), path: file() }))
  const extra = (users: readonly string[], n: number) => Array.from({ length: n }, () => randomFilter(pick(users)))
  return { writers, others, followed, events, extra }
}

/** Best ns/event of each, over alternating runs so both see the same machine state. */
function compare(a: Tables, b: Tables, events: readonly Ev[]): [number, number] {
  let bestA = Infinity
  let bestB = Infinity
  for (let run = 0; run < 9; run++) {
    bestA = Math.min(bestA, perEventNs(a, events))
    bestB = Math.min(bestB, perEventNs(b, events))
  }
  return [bestA, bestB]
}

export type Tables = SubscriptionTables<number>
export type Ev = { user: string; path: string }

function tablesOf(filters: readonly Filter[]): Tables {
  const tables = new SubscriptionTables<number>()
  filters.forEach((f, i) => tables.add(i, [f]))
  return tables
}

export function perEventNs(tables: Tables, events: readonly Ev[]): number {
  let matched = 0
  const start = process.hrtime.bigint()
  for (const ev of events) matched += tables.match(ev).size
  const ns = Number(process.hrtime.bigint() - start)
  if (matched < 0) console.log(matched) // keeps the work observable
  return ns / events.length
}

function filter(user: string, path: string, prefix: boolean): Filter {
  return { user, path, prefix, text: `${user}${path}${prefix ? '*' : ''}` }
}

const Z32 = 'ybndrfg8ejkmcpqxot1uwisza345h769'

function randomKey(rand: () => number): string {
  let key = ''
  for (let i = 0; i < 52; i++) key += Z32[Math.floor(rand() * 32)]
  return key
}

const round = (n: number) => Math.round(n * 100) / 100

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchMatch()
}
