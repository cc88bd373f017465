/** One scrape of a Prometheus text endpoint, parsed: metric types and every sample. */
export class Scrape {
  /** metric family name → type (counter, gauge, histogram, summary) */
  readonly types = new Map<string, string>()
  readonly samples: { name: string; labels: Record<string, string>; value: number }[] = []

  constructor(readonly text: string) {
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line)
      if (type) this.types.set(type[1]!, type[2]!)
      if (line === '' || line.startsWith('#')) continue
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
      if (m === null) throw new Error(`not an exposition line: ${line}`)
      const labels: Record<string, string> = {}
      for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!
      this.samples.push({ name: m[1]!, labels, value: Number(m[3]) })
    }
  }

  static async of(url: string): Promise<Scrape> {
    const res = await fetch(url)
    if (!res.ok) throw new Error(`${url} answered ${res.status}`)
    return new Scrape(await res.text())
  }

  /** The sample named `name` whose labels include `labels`; 0 when there is none. */
  value(name: string, labels: Record<string, string> = {}): number {
    const found = this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} names ${found.length} samples`)
    return found[0]?.value ?? 0
  }

  /** Sum of every sample named `name` whose labels include `labels`. */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((n, s) => n + s.value, 0)
  }

  /** The family a sample belongs to (`x_bucket` → `x` for a histogram `x`). */
  family(sample: string): string | undefined {
    if (this.types.has(sample)) return sample
    const base = sample.replace(/_(bucket|sum|count|created)$/, '')
    return this.types.has(base) ? base : undefined
  }
}

/** Polls a scrape until `done` holds; fails with the last value seen after `ms`. */
export async function scrapeUntil(url: string, done: (s: Scrape) => boolean, what: string, ms = 20_000): Promise<Scrape> {
  const deadline = Date.now() + ms
  for (;;) {
    const s = await Scrape.of(url)
    if (done(s)) return s
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
