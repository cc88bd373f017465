/** One commit group taking this long means the writer is stuck (a healthy fsync takes ms). */
export const WRITER_STUCK_MS = 30_000
/** A cheap read that has not answered in this long means the storage is not answering. */
export const STORAGE_TIMEOUT_MS = 2_000

export interface ReadinessProbe {
  /** a cheap read through the storage; resolves when the storage answers */
  storage: () => Promise<unknown>
  /** when the writer's current commit group started (`performance.now()`), if one is running */
  busySince: () => number | undefined
  stuckAfterMs?: number
  /** told why the storage failed; the answer itself says only that it did */
  onStorageError?: (err: unknown) => void
}

/**
 * Whether the homeserver can do its work: undefined when ready, else the reason, one line
 * that reveals nothing of the machine (no file names, no error internals).
 */
export async function readiness(probe: ReadinessProbe): Promise<string | undefined> {
  const since = probe.busySince()
  if (since !== undefined) {
    const ms = performance.now() - since
    if (ms >= (probe.stuckAfterMs ?? WRITER_STUCK_MS)) return `the writer has been committing one group for ${Math.floor(ms / 1000)} s`
  }
  const TIMEOUT = Symbol('timeout')
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<typeof TIMEOUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMEOUT), STORAGE_TIMEOUT_MS)
  })
  try {
    if ((await Promise.race([probe.storage(), timeout])) === TIMEOUT) {
      return `the storage did not answer a read within ${STORAGE_TIMEOUT_MS / 1000} s`
    }
  } catch (err) {
    probe.onStorageError?.(err)
    return 'the storage failed a read'
  } finally {
    clearTimeout(timer)
  }
  return undefined
}
