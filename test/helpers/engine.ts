import { buildConfig } from '../../src/config/config.js'
import { openStore } from '../../src/kv/open.js'
import type { Store } from '../../src/kv/store.js'
import { createLogger } from '../../src/log.js'
import { freshDatabase } from './postgres.js'
import { tempDir, type Teardown } from './server.js'

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

/**
 * A store on the test engine, opened as the server opens it and closed at teardown. On
 * PostgreSQL `another()` opens a second instance on the same database, as a second process
 * would; LevelDB allows one process per folder, so there it is undefined.
 */
export async function openTestStore(t: Teardown): Promise<{ store: Store; another?: () => Promise<Store> }> {
  const dir = tempDir(t, 'hearth-store-')
  const config = buildConfig({ DATA_DIR: dir, ...(await engineSettings(t, dir)) })
  const open = async () => {
    const store = await openStore(config, createLogger('silent'))
    t.teardown(() => store.close())
    return store
  }
  return { store: await open(), another: config.databaseUrl === undefined ? undefined : open }
}
