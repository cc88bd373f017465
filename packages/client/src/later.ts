/** A call scheduled by `later`, which can be called off. */
export interface Later {
  cancel(): void
}

/**
 * Calls `fn` after `ms`. With 0, it runs once the current turn of the event loop, and all the
 * callbacks and promises it set off, are done: what they gather (a worker's acks of one read)
 * goes together. Node's `setTimeout(fn, 0)` waits at least 1 ms, which a chain of lease,
 * handler and ack pays at every step, so Node's `setImmediate` is used where it exists.
 */
export function later(fn: () => void, ms: number): Later {
  if (ms <= 0 && typeof setImmediate === 'function') {
    const handle = setImmediate(fn)
    return { cancel: () => clearImmediate(handle) }
  }
  const timer = setTimeout(fn, ms)
  return { cancel: () => clearTimeout(timer) }
}
