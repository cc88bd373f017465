/**
 * Waits for `cond` to hold, checking every few ms; fails after `ms` with `what` (and what
 * `state()` says at that moment), so a stuck test names what it was waiting for.
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 30_000,
  state: () => unknown = () => undefined,
): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await cond()) return
    if (Date.now() > deadline) {
      const seen = state()
      throw new Error(`waited ${ms} ms for ${what}${seen === undefined ? '' : `; last seen: ${JSON.stringify(seen)}`}`)
    }
    await new Promise((r) => setTimeout(r, 25))
  }
}
