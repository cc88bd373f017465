import { blake3 } from '@noble/hashes/blake3.js'
import type { HearthEvent } from '../../src/events/event.js'
import type { HomeserverClient } from 'hearth-homeserver-client'

/** The event an acknowledged write must have left; its commit time lies within [sentAt, ackedAt]. */
export type AckedEvent = Omit<HearthEvent, 'ts'> & { sentAt: number; ackedAt: number }

export function contentHash(body: string | Uint8Array): string {
  return Buffer.from(blake3(typeof body === 'string' ? Buffer.from(body) : body)).toString('base64')
}

/**
 * Writes made one at a time, each recorded once acknowledged with the event the contract
 * (SPEC §5) says it leaves: seqs follow the head the log had before the first one and are
 * never skipped, so the n-th acknowledged write is `head + n`. Tests build what they expect
 * from these, not from the log the server replays, so a bug in the replay cannot show on
 * both sides of an assertion. Every write to the server must go through here.
 */
export class AckedWrites {
  readonly events: AckedEvent[] = []
  #head: number
  #queue: Promise<unknown> = Promise.resolve()

  constructor(head = 0) {
    this.#head = head
  }

  put(client: HomeserverClient, path: string, body: string | Uint8Array<ArrayBuffer>): Promise<AckedEvent> {
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length
    return this.#write(client, path, { type: 'PUT', contentHash: contentHash(body), size }, () => client.put(path, body))
  }

  delete(client: HomeserverClient, path: string): Promise<AckedEvent> {
    return this.#write(client, path, { type: 'DEL' }, () => client.delete(path))
  }

  #write(client: HomeserverClient, path: string, what: Pick<HearthEvent, 'type' | 'contentHash' | 'size'>, send: () => Promise<void>): Promise<AckedEvent> {
    // one write in flight at a time, or the order of the seqs would be unknown
    const done = this.#queue.then(async () => {
      const sentAt = Date.now()
      await send()
      const ev: AckedEvent = { seq: ++this.#head, user: client.user, path, ...what, sentAt, ackedAt: Date.now() }
      this.events.push(ev)
      return ev
    })
    this.#queue = done.catch(() => {})
    return done
  }
}

/** A PUT sent while the server may go away: answered, or not (then it may have landed or not). */
export interface SentPut {
  user: string
  path: string
  type: 'PUT'
  contentHash: string
  size: number
  acked: boolean
}

/**
 * PUTs sent across a server's stop and start, each to a path not written before, in the order
 * they were sent. An unanswered one may still have landed; since its path is written once,
 * the file the server serves at that path tells whether it did.
 */
export class SentPuts {
  readonly puts: SentPut[] = []

  /** true when acknowledged; false when refused or unanswered. */
  async put(client: HomeserverClient, path: string, body: string | Uint8Array<ArrayBuffer>): Promise<boolean> {
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length
    const sent: SentPut = { user: client.user, path, type: 'PUT', contentHash: contentHash(body), size, acked: false }
    this.puts.push(sent)
    const res = await client.request('PUT', path, body).catch(() => undefined)
    await res?.body?.cancel()
    sent.acked = res?.status === 201
    return sent.acked
  }

  acked(): SentPut[] {
    return this.puts.filter((p) => p.acked)
  }

  /** The PUTs that landed, in the order sent: the acknowledged ones, and the others whose file `url` serves with their content. */
  async landed(url: string): Promise<SentPut[]> {
    const out: SentPut[] = []
    for (const p of this.puts) {
      if (p.acked || (await fetch(`${url}/storage/${p.user}${p.path}`, { method: 'HEAD' })).headers.get('etag') === `"${p.contentHash}"`) out.push(p)
    }
    return out
  }
}
