/** The set kept under `key` in `map`, made empty the first time it is asked for. */
export function setOf<K, T>(map: Map<K, Set<T>>, key: K): Set<T> {
  let set = map.get(key)
  if (set === undefined) map.set(key, (set = new Set()))
  return set
}
