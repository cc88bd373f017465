import type { CommitTx, Store } from '../../src/kv/store.js'

/**
 * A real store whose commits pass through `around` first: a fault or a delay put in front of
 * the real engine's commit (a full disk, an fsync that hangs), everything else untouched.
 */
export function aroundCommit(inner: Store, around: <T>(tx: CommitTx, work: (tx: CommitTx) => Promise<T>) => Promise<T>): Store {
  const commit: Store['commit'] = (work) => inner.commit((tx) => around(tx, work))
  return new Proxy(inner, {
    get: (target, prop) => {
      if (prop === 'commit') return commit
      const v = Reflect.get(target, prop, target) as unknown
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}
