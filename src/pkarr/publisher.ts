/**
 * Keeps the homeserver's pkarr packet on each relay: publishes at start, re-signs and
 * republishes on an interval shorter than the record's hour, and retries failures with
 * exponential backoff and jitter. Every failure is logged, none is thrown.
 */
import { z } from 'zod'
import { keypairFromSecret } from '../auth/keys.js'
import { backoffDelay } from 'hearth-homeserver-client/backoff'
import { homeserverPacket, nowMicros, parsePayload, HOMESERVER_TTL } from './packet.js'

export interface PublishLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface PublisherOptions {
  secretKey: Uint8Array
  /** the HTTP port clients should use (SvcParam 65280) */
  port: number
  /** the target name; `localhost` in testnet */
  host?: string
  relays: string[]
  /** republish interval, at most an hour (the record's TTL) */
  intervalMs?: number
  /** first retry delay; doubles per failure up to `maxRetryMs` */
  retryMs?: number
  maxRetryMs?: number
  /** per-request timeout */
  timeoutMs?: number
  log: PublishLog
  /** told of every attempt's outcome (the metrics count them) */
  onPublish?: (ok: boolean) => void
}

export interface Publisher {
  /** true after the first successful publish to any relay; false if stopped before that */
  readonly publishedOnce: Promise<boolean>
  stop(): Promise<void>
}

const HOUR = HOMESERVER_TTL * 1000
const schema = z.object({
  secretKey: z.instanceof(Uint8Array).refine((k) => k.length === 32, 'expected a 32-byte secret key'),
  port: z.number().int().min(1).max(65535),
  host: z.string().regex(/^(?!-)[A-Za-z0-9-]{1,63}(?:\.(?!-)[A-Za-z0-9-]{1,63})*\.?$/, 'expected a host name').default('localhost'),
  relays: z.array(z.url({ protocol: /^https?$/ })),
  intervalMs: z.number().int().positive().default(30 * 60_000).transform((ms) => Math.min(ms, HOUR)),
  retryMs: z.number().int().positive().default(500),
  maxRetryMs: z.number().int().positive().default(5 * 60_000),
  timeoutMs: z.number().int().positive().default(10_000),
})

/** `<relay>/<z32>`, whether or not the relay URL ends in a slash */
export function relayUrl(relay: string, z32: string): string {
  return `${relay.replace(/\/+$/, '')}/${z32}`
}

export function startPublisher(options: PublisherOptions): Publisher {
  const opts = schema.parse(options)
  const { log, onPublish = () => {} } = options
  const { z32, publicKey } = keypairFromSecret(opts.secretKey)
  const stopping = new AbortController()
  const timers = new Set<NodeJS.Timeout>()
  const inflight = new Set<Promise<void>>()
  // timestamps only grow, even if the clock steps back or a relay holds a newer one
  let lastTimestamp = 0n
  let markPublished!: (ok: boolean) => void
  const publishedOnce = new Promise<boolean>((resolve) => (markPublished = resolve))
  if (opts.relays.length === 0) markPublished(false)

  function nextTimestamp(): bigint {
    const now = nowMicros()
    lastTimestamp = now > lastTimestamp ? now : lastTimestamp + 1n
    return lastTimestamp
  }

  async function learnHeldTimestamp(url: string, signal: AbortSignal): Promise<void> {
    const res = await fetch(url, { signal })
    if (!res.ok) return
    const held = parsePayload(publicKey, new Uint8Array(await res.arrayBuffer()))
    if (held.timestamp > lastTimestamp) lastTimestamp = held.timestamp
  }

  async function publishOnce(relay: string): Promise<void> {
    const url = relayUrl(relay, z32)
    const signal = AbortSignal.any([stopping.signal, AbortSignal.timeout(opts.timeoutMs)])
    const { payload, timestamp } = homeserverPacket(opts.secretKey, { host: opts.host, port: opts.port }, nextTimestamp())
    const res = await fetch(url, { method: 'PUT', body: payload, signal })
    const detail = await res.text().catch(() => '')
    if (res.status === 409) await learnHeldTimestamp(url, signal).catch(() => undefined)
    if (!res.ok) throw new Error(`${res.status} ${detail}`.trim())
    log.info({ relay, key: z32, timestamp: String(timestamp) }, 'published the homeserver pkarr packet')
  }

  function schedule(relay: string, failures: number, delay: number): void {
    if (stopping.signal.aborted) return
    const timer = setTimeout(() => {
      timers.delete(timer)
      const run = publishOnce(relay).then(
        () => {
          onPublish(true)
          markPublished(true)
          schedule(relay, 0, opts.intervalMs)
        },
        (err: unknown) => {
          if (stopping.signal.aborted) return
          onPublish(false)
          // half of each wait drawn at random keeps many homeservers from retrying in step
          const retry = { baseMs: opts.retryMs, maxMs: Math.min(opts.maxRetryMs, opts.intervalMs), jitter: 0.5 }
          const wait = Math.round(backoffDelay(retry, failures))
          log.warn({ relay, err: (err as Error).message, retryInMs: wait }, 'pkarr publish failed')
          schedule(relay, failures + 1, wait)
        },
      )
      inflight.add(run)
      void run.finally(() => inflight.delete(run))
    }, delay)
    timer.unref()
    timers.add(timer)
  }

  for (const relay of opts.relays) schedule(relay, 0, 0)

  return {
    publishedOnce,
    async stop() {
      stopping.abort()
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      await Promise.allSettled([...inflight])
      markPublished(false)
    },
  }
}
