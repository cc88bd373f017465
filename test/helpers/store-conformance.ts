import type { Test } from 'tap'
import { accountCases } from './store-cases/accounts.js'
import { blobCases } from './store-cases/blobs.js'
import { commitCases } from './store-cases/commits.js'
import { consumerCases } from './store-cases/consumers.js'
import { logReadCases } from './store-cases/log-reads.js'
import { longKeyCases } from './store-cases/long-keys.js'
import type { StoreFactory } from './store-cases/common.js'
import { upstreamCases } from './store-cases/upstreams.js'
import { viewCases } from './store-cases/views.js'

export type { OpenedStore, StoreFactory } from './store-cases/common.js'

/**
 * The one conformance suite of the Store interface (src/kv/store.ts), abstract-level's
 * pattern: every engine runs all of it through its factory. It tests what the writer and
 * the rest of Hearth rely on — commit groups whole or not at all, gapless seqs, reads that
 * see every earlier commit, byte order (for keys as long as paths may be), exactly-once tokens and sessions across instances, consumers changed under a lock,
 * blobs streamed in bounded memory — and, where the factory gives a `second` instance,
 * that those promises hold across processes. Each case opens its own empty store.
 */
export function storeConformance(t: Test, factory: StoreFactory): void {
  const cases = { ...commitCases, ...longKeyCases, ...logReadCases, ...accountCases, ...blobCases, ...upstreamCases, ...viewCases, ...consumerCases }
  for (const [name, run] of Object.entries(cases)) t.test(`${factory.name}: ${name}`, (t) => run(t, factory))
}
