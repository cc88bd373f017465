import { randomKeypair } from '../../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import type { StreamEvent } from './sse.js'
import { RawStream } from './feed.js'

/**
 * Private streams opened with sessions that then expire, against a server with a short
 * SESSION_TTL (`ttlMs`), while their owners go on writing private files under sessions of
 * their own (signed in again as each expires). Each stream must end within `endMs` of its
 * session's expiry, and carry no `/priv/` event committed after it: the session was made
 * before its signup answered, so it expired by then plus `ttlMs`, and an event's `ts` is the
 * server's commit time on the same clock. After its end the session reads nothing. At least one
 * stream must have carried a private event, or the checks proved nothing.
 */
export async function expiringSessions(url: string, opts: { streams: number; ttlMs: number; endMs?: number }): Promise<{ failures: string[]; figures: Record<string, number> }> {
  const endMs = opts.endMs ?? 60_000
  const results = await Promise.all(Array.from({ length: opts.streams }, () => oneStream(url, opts.ttlMs, endMs)))
  const failures = results.flatMap((r) => r.failures)
  const carried = results.filter((r) => r.privateEvents > 0).length
  if (carried === 0) failures.push(`none of the ${opts.streams} private streams carried a private event before its session expired`)
  return { failures, figures: { expiringStreams: opts.streams, expiringStreamsWithEvents: carried, privateEventsBeforeExpiry: results.reduce((n, r) => n + r.privateEvents, 0) } }
}

async function oneStream(url: string, ttlMs: number, endMs: number): Promise<{ failures: string[]; privateEvents: number }> {
  const owner = new HomeserverClient(url, randomKeypair())
  await owner.signup()
  const expiredBy = Date.now() + ttlMs
  const stream = await RawStream.open(`${url}/subscribe/${owner.user}/priv/*`, { cookie: `${owner.user}=${owner.session}` })
  const failures: string[] = []
  if (stream.response.status !== 200) {
    stream.close()
    // a session that expired before the stream opened is refused, rightly
    return Date.now() > expiredBy ? { failures, privateEvents: 0 } : { failures: [`a private stream opened in time answered ${stream.response.status}`], privateEvents: 0 }
  }
  const writer = new HomeserverClient(url, owner.keypair)
  let writerExpires = 0
  for (let n = 0; !stream.ended && Date.now() < expiredBy + endMs; n++) {
    if (Date.now() > writerExpires - 1000) {
      await writer.signin()
      writerExpires = Date.now() + ttlMs
    }
    await writer.put(`/priv/tick/${n}`, 'private').catch(() => {})
    await new Promise((r) => setTimeout(r, 100))
  }
  if (!stream.ended) failures.push(`a private stream still open ${endMs} ms after its session expired`)
  stream.close()
  const events = stream.events().map((f) => JSON.parse(f.data!) as StreamEvent)
  for (const e of events) {
    if (e.path.startsWith('/priv/') && e.ts > expiredBy) failures.push(`a private stream carried ${e.path}, committed ${e.ts - expiredBy} ms after its session expired`)
  }
  const res = await owner.request('GET', '/priv/tick/0')
  await res.arrayBuffer()
  if (res.status !== 401) failures.push(`the expired session still reads /priv/ (${res.status})`)
  return { failures, privateEvents: events.filter((e) => e.ts <= expiredBy).length }
}
