/** Runs work one job at a time, in call order; a failed job does not stop the next. */
export class Serial {
  #tail: Promise<unknown> = Promise.resolve()

  run<T>(work: () => Promise<T>): Promise<T> {
    const job = this.#tail.then(work)
    this.#tail = job.catch(() => undefined)
    return job
  }
}
