import { freshDatabase } from './postgres.js'
import type { Teardown } from './server.js'

/**
 * The storage engine is a parameter of the harness: `HEARTH_TEST_ENGINE=postgres` runs a test
 * file's servers on PostgreSQL, one fresh database per data folder (so a server restarted on
 * the same folder finds its data again), dropped when the test ends. Unset: LevelDB.
 */
export type Engine = 'leveldb' | 'postgres'

export const TEST_ENGINE: Engine = process.env.HEARTH_TEST_ENGINE === 'postgres' ? 'postgres' : 'leveldb'

const databases = new Map<string, Promise<string>>()

/** Settings that put a server with data folder `dataDir` on the test engine. */
export async function engineSettings(t: Teardown, dataDir: string): Promise<{ DATABASE_URL?: string }> {
  if (TEST_ENGINE === 'leveldb') return {}
  let url = databases.get(dataDir)
  if (url === undefined) {
    url = freshDatabase(t)
    databases.set(dataDir, url)
    t.teardown(() => void databases.delete(dataDir))
  }
  return { DATABASE_URL: await url }
}
