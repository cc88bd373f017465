import type { HomeserverClient } from 'hearth-homeserver-client'

/**
 * One writer PUTting one small file at a time on a steady schedule: the i-th PUT is due
 * i/rate seconds after the first, and waits for the one before it, so a slow answer delays
 * the rest rather than piling up requests. Each file is new: `<folder>/<n in base 36>`.
 */
export class SteadyWriter {
  readonly #writer: HomeserverClient
  readonly #folder: string
  #written = 0

  constructor(writer: HomeserverClient, folder: string) {
    this.#writer = writer
    this.#folder = folder
  }

  /** PUTs `rate` a second for `seconds` (at least one); resolves with when each was sent (`performance.now()`). */
  async write(rate: number, seconds: number): Promise<number[]> {
    const total = Math.max(1, Math.round(rate * seconds))
    const sent: number[] = []
    const started = performance.now()
    for (let i = 0; i < total; i++) {
      const wait = started + (i * 1000) / rate - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      sent.push(performance.now())
      await this.#writer.put(`${this.#folder}/${(this.#written++).toString(36)}`, 'x')
    }
    return sent
  }
}
