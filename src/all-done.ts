/**
 * Like `Promise.all`, but settles only once every promise has: with their values, or with the
 * first failure in order. When it rejects nothing it waited on is still running, so a caller
 * that cleans up on failure (a commit closing its reads) does not race work it started.
 */
export async function allDone<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(promises)
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T
}
