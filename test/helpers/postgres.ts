import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { Teardown } from './server.js'

/**
 * PostgreSQL for tests: the local server (SPEC §9), one fresh database per test.
 * `HEARTH_TEST_DATABASE_URL` names the admin connection; `HEARTH_TEST_REQUIRE_POSTGRES=1`
 * (set in CI) turns "no server, tests skipped" into a failure.
 */
export const ADMIN_URL = process.env.HEARTH_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const REQUIRED = process.env.HEARTH_TEST_REQUIRE_POSTGRES === '1'

interface Tap extends Teardown {
  fail(message: string): void
  test(name: string, options: { skip: string }, fn: () => void): unknown
}

let available: Promise<boolean> | undefined

/** Whether the admin URL answers (asked once per process). */
export function postgresAvailable(): Promise<boolean> {
  available ??= (async () => {
    const client = admin(3)
    try {
      await client.connect()
      await client.query('SELECT 1')
      return true
    } catch {
      return false
    } finally {
      await client.end().catch(() => {})
    }
  })()
  return available
}

/**
 * True when PostgreSQL answers. Otherwise says so loudly and records a skip, or, when
 * PostgreSQL is required, a failure; the caller then runs nothing.
 */
export async function requirePostgres(t: Tap): Promise<boolean> {
  if (await postgresAvailable()) return true
  const why = `no PostgreSQL answers at ${ADMIN_URL}`
  if (REQUIRED) {
    t.fail(`${why}, and HEARTH_TEST_REQUIRE_POSTGRES=1`)
    return false
  }
  process.stderr.write(`\n*** PostgreSQL tests SKIPPED: ${why} (set HEARTH_TEST_DATABASE_URL, or start it) ***\n\n`)
  t.test('PostgreSQL tests', { skip: `${why}; HEARTH_TEST_REQUIRE_POSTGRES=1 makes this a failure` }, () => {})
  return false
}

/**
 * Creates a database of its own for one test and drops it at teardown, ending its
 * connections first. Its default collation is ICU's en-US, an order unlike byte order, so a
 * query that forgets COLLATE "C" shows in the tests. Resolves with its URL.
 */
export async function freshDatabase(t: Teardown): Promise<string> {
  const name = `hearth_test_${process.pid}_${randomBytes(5).toString('hex')}`
  await asAdmin((c) => c.query(`CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`))
  t.teardown(() =>
    asAdmin(async (c) => {
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    }),
  )
  const url = new URL(ADMIN_URL)
  url.pathname = '/' + name
  return url.toString()
}

/** A raw pool on a test database, ended at teardown: for what the Store does not expose. */
export function rawPool(t: Teardown, url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  pool.on('error', () => {}) // a test that terminates backends may break an idle one
  t.teardown(() => pool.end())
  return pool
}

async function asAdmin<T>(work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = admin(10)
  try {
    await client.connect()
    return await work(client)
  } finally {
    await client.end().catch(() => {})
  }
}

function admin(connectTimeoutSeconds: number): pg.Client {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: connectTimeoutSeconds * 1000 })
  client.on('error', () => {}) // reported by the query that meets it
  return client
}
