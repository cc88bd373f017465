import type pg from 'pg'
import { connect, transaction } from './connect.js'
import { silentLog } from './log-types.js'
import { LOCKS } from './locks.js'
import { migrations as known, type Migration } from './migrations.js'

/**
 * Applies the pending migrations, in order, in one transaction that first takes an advisory
 * lock: instances starting together queue on it, and the later ones find nothing left to do.
 * DDL is transactional in PostgreSQL, so a failing migration leaves no half-built schema.
 *
 * A runner of a few dozen lines rather than a library: the needs are forward-only versions
 * from a module (no files to ship, no down steps, no CLI of its own), and a library would
 * bring its own driver, table layout and lock story to reconcile with ours.
 * (A later migration that cannot run in a transaction, such as CREATE INDEX CONCURRENTLY,
 * will need a step outside this one.)
 *
 * Resolves with the versions it applied. Refuses a database whose schema is newer than this
 * code knows: an older Hearth must not write to it.
 */
export async function applyMigrations(pool: pg.Pool, list: readonly Migration[] = known): Promise<number[]> {
  return transaction(pool, async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCKS.class, LOCKS.migrate])
    await tx.query(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`)
    const { rows } = await tx.query<{ version: number }>('SELECT version FROM schema_migrations')
    const applied = new Set(rows.map((r) => r.version))
    const latest = Math.max(0, ...list.map((m) => m.version))
    const newest = Math.max(0, ...applied)
    if (newest > latest) {
      throw new Error(`the database's schema is version ${newest}, newer than this Hearth knows (${latest}): upgrade Hearth`)
    }
    const done: number[] = []
    for (const m of [...list].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue
      // no parameters: sent as a simple query, which may hold many statements
      await tx.query(m.sql)
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name])
      done.push(m.version)
    }
    return done
  })
}

/** `hearth migrate`: brings the database at `url` to the current schema, then disconnects. */
export async function migrate(url: string): Promise<number[]> {
  const pool = connect(url, { max: 1, log: silentLog })
  try {
    return await applyMigrations(pool)
  } finally {
    await pool.end()
  }
}
