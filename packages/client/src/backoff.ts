/**
 * The one retry policy: exponential backoff with a cap and jitter. Attempt n (from 0) may wait
 * up to d = min(max, base·2^n); `jitter` is the share of d drawn at random, so the wait is
 * uniform in [d·(1 − jitter), d). Full jitter (1) spreads the reconnects of many clients after
 * a restart instead of bunching them; none (0) suits a retry only its own process makes.
 * Imports nothing: the client entry point and the browser viewer load it as it is.
 */
export interface Backoff {
  readonly baseMs: number
  readonly maxMs: number
  /** the random share of each wait, from 0 (a fixed wait) to 1 (anywhere from 0 up) */
  readonly jitter: number
}

export function backoffDelay(policy: Backoff, attempt: number, random: () => number = Math.random): number {
  // 2^30 already passes any cap in ms; unclamped, 2^n reaches Infinity, and a base of 0 (a server's
  // `retry: 0`) times Infinity is NaN
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 30))
  return ceiling * (1 - policy.jitter + policy.jitter * random())
}

/** Waits `ms`, or less when `signal` aborts; never rejects. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
