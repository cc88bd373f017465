import { spawnSync } from 'node:child_process'
import { ADMIN_URL, postgresAvailable } from './postgres.js'

/**
 * `npm test`'s second pass: the route, feed, auth and crash test files that matter, again on
 * PostgreSQL (HEARTH_TEST_ENGINE=postgres; test/helpers/engine.ts). Where no PostgreSQL
 * answers it says so loudly and skips, unless HEARTH_TEST_REQUIRE_POSTGRES=1 (CI) makes that
 * a failure.
 */
const FILES = [
  'storage', 'storage-list', 'storage-paths', 'clash-depth', 'writer-concurrency', 'restart', 'retention', 'crash',
  'subscribe', 'feed-reader', 'feed-drain', 'stored-events', 'snapshot', 'client-snapshot', 'feed-floor', 'feed-handover', 'events-feed', 'events-stream', 'admin-events-stream', 'private-feeds',
  'auth-routes', 'auth-session-info', 'security', 'official-client', 'relay', 'relay-ingest', 'relay-crash', 'relay-sources', 'relay-people',
  'consumers', 'consumers-crash', 'consumers-instances',
]

if (!(await postgresAvailable())) {
  const line = `*** PostgreSQL tests SKIPPED: no PostgreSQL answers at ${ADMIN_URL} (set HEARTH_TEST_DATABASE_URL, or start it) ***`
  process.stderr.write(`\n${line}\n\n`)
  process.exit(process.env.HEARTH_TEST_REQUIRE_POSTGRES === '1' ? 1 : 0)
}
const tap = (files: string[], jobs: number) =>
  spawnSync('tap', ['--disable-coverage', '--jobs', String(jobs), '--timeout', '300', ...files], {
    stdio: 'inherit',
    env: { ...process.env, HEARTH_TEST_ENGINE: 'postgres' },
  }).status ?? 1
const status = tap(FILES.map((f) => new URL(`../${f}.test.js`, import.meta.url).pathname), 2)
// Restarts the PostgreSQL server itself: alone, after everything else.
const alone = tap([new URL('../postgres-restart.serial.js', import.meta.url).pathname], 1)
process.exit(status || alone)
