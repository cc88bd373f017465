import type { StreamEvent } from './sse.js'

/** Applies PUT/DEL in order: the file set the log describes, as `<user><path>` → content hash. */
export function replay(log: readonly StreamEvent[]): Map<string, string> {
  const files = new Map<string, string>()
  for (const ev of log) {
    if (ev.type === 'PUT') files.set(ev.user + ev.path, ev.contentHash!)
    else files.delete(ev.user + ev.path)
  }
  return files
}

/** What an event must say, as one line: the same for an event as streamed and as acknowledged. */
export interface EventLine {
  seq: string | number
  type: string
  user: string
  path: string
  contentHash?: string
}

/** `seq type uri hash`: what tests compare, so a streamed event and an acknowledged write line up. */
export function eventLine(ev: EventLine): string {
  return `${ev.seq} ${ev.type} pubky://${ev.user}${ev.path} ${ev.contentHash ?? ''}`
}

/** undefined when `got` is exactly `want` (seq, type, uri, hash); otherwise the first difference. */
export function firstDifference(got: readonly EventLine[], want: readonly EventLine[]): string | undefined {
  const line = (ev: EventLine | undefined) => (ev === undefined ? undefined : eventLine(ev))
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    const [a, b] = [line(got[i]), line(want[i])]
    if (a !== b) return `event ${i} is ${a ?? 'missing'}, the log has ${b ?? 'nothing'} (${got.length} vs ${want.length})`
  }
  return undefined
}

/** undefined when seqs strictly increase; otherwise where they do not. */
export function disorder(events: readonly StreamEvent[]): string | undefined {
  for (let i = 1; i < events.length; i++) {
    if (Number(events[i]!.seq) <= Number(events[i - 1]!.seq)) return `seq ${events[i]!.seq} after ${events[i - 1]!.seq}`
  }
  return undefined
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}
