import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/config.js'
import { LevelStore } from './level/store.js'
import type { Store } from './store.js'

/** The storage named by the config cannot be opened: start-up stops with one line, exit 2. */
export class StorageUnavailable extends Error {}

/**
 * The engine the config names: PostgreSQL when `DATABASE_URL` is set, else the embedded
 * LevelDB in the data folder. The PostgreSQL driver loads only when it is used.
 */
export async function openStore(config: Readonly<Config>, log: FastifyBaseLogger): Promise<Store> {
  if (config.databaseUrl !== undefined) {
    const { openPostgresStore } = await import('./postgres/store.js')
    try {
      return await openPostgresStore(config.databaseUrl, { log, pollMs: config.databasePollMs })
    } catch (err) {
      throw new StorageUnavailable(`cannot open the database: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`)
    }
  }
  const { store, swept } = await LevelStore.open(config.dataDir)
  if (swept > 0) log.info({ swept }, 'removed unreferenced blobs')
  return store
}
