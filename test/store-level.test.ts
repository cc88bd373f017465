import t from 'tap'
import { LevelStore } from '../src/kv/level/store.js'
import { tempDir } from './helpers/server.js'
import { storeConformance, type StoreFactory } from './helpers/store-conformance.js'

/** The LevelDB engine against the one conformance suite (one process: no `second`). */
const factory: StoreFactory = {
  name: 'leveldb',
  async open(t) {
    const dir = tempDir(t, 'hearth-store-')
    let { store } = await LevelStore.open(dir)
    t.teardown(() => store.close())
    return {
      store,
      async reopen() {
        await store.close()
        ;({ store } = await LevelStore.open(dir))
        return store
      },
    }
  },
}

storeConformance(t, factory)
