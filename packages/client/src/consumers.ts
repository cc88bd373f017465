import { HttpError } from './homeserver.js'

/** Who asks: a homeserver's url and the owner's headers (`pubky-host` and the session cookie). `HomeserverClient` is one. */
export interface ConsumerOwner {
  readonly url: string
  headers(extra?: Record<string, string>): Record<string, string>
}

/** `PUT /consumers/<ulid>`'s body (SPEC §12); what is left out takes the server's default. */
export interface ConsumerDefinition {
  filters?: string[]
  from?: 'new' | 'start' | { after: string }
  ack?: 'explicit' | 'automatic'
  ackWaitMs?: number
  maxDeliver?: number
  maxPending?: number
  shareProgress?: boolean
}

/** A consumer as the server answers it: its definition, and where it stands. */
export interface ConsumerState extends Required<ConsumerDefinition> {
  id: string
  /** every matching event at or below it is done */
  ackFloor: string
  /** events out unacked */
  pending: number
  /** of those, events that went out more than once */
  redelivered: number
  /** dead letters kept */
  dead: number
  /** events in the log past the ack floor */
  lag: number
  /** streams open on the instance that answers */
  streams: number
  /** ms since the epoch */
  createdAt: number
  /** the last time retention overtook the consumer: events after `requested` and below `floor` never went out */
  reset: { requested: string; floor: string } | null
}

/** What `POST /consumers/<ulid>/ack` takes: ids done, to redeliver now, to park as dead now. */
export interface AckBody {
  ack?: string[]
  nak?: string[]
  term?: string[]
}

/**
 * The consumer routes of SPEC §12 for their owner: make one (idempotent: the same id and
 * definition answer the same consumer), read, list, delete, acknowledge, reset, read the dead
 * letters, and wait until an event was processed. Refusals throw `HttpError` with the
 * server's §7 body.
 */
export class Consumers {
  readonly #owner: ConsumerOwner

  constructor(owner: ConsumerOwner) {
    this.#owner = owner
  }

  /** Makes the consumer, or answers it when it exists with this definition (409 when with another). */
  async create(id: string, definition: ConsumerDefinition): Promise<ConsumerState> {
    return this.#json('PUT', `/consumers/${id}`, definition)
  }

  async get(id: string): Promise<ConsumerState> {
    return this.#json('GET', `/consumers/${id}`)
  }

  async list(): Promise<ConsumerState[]> {
    return (await this.#json<{ consumers: ConsumerState[] }>('GET', '/consumers')).consumers
  }

  async delete(id: string): Promise<void> {
    await this.#send('DELETE', `/consumers/${id}`)
  }

  async ack(id: string, body: AckBody): Promise<ConsumerState> {
    return this.#json('POST', `/consumers/${id}/ack`, body)
  }

  /** Replaces the stored position and drops what is pending. */
  async reset(id: string, from: ConsumerDefinition['from']): Promise<ConsumerState> {
    return this.#json('POST', `/consumers/${id}/reset`, { from })
  }

  async dead(id: string): Promise<Record<string, unknown>[]> {
    return (await this.#json<{ events: Record<string, unknown>[] }>('GET', `/consumers/${id}/dead`)).events
  }

  /** Waits up to `timeoutMs` (at most 30000) until the consumer processed `event` (an id). */
  async acked(id: string, event: string, timeoutMs = 10_000): Promise<{ acked: boolean; matched: boolean; ackFloor: string }> {
    return this.#json('GET', `/consumers/${id}/acked?event=${encodeURIComponent(event)}&timeoutMs=${timeoutMs}`)
  }

  async #json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.#send(method, path, body)).json() as Promise<T>
  }

  async #send(method: string, path: string, body?: unknown): Promise<Response> {
    const headers = this.#owner.headers(body === undefined ? {} : { 'content-type': 'application/json' })
    const res = await fetch(this.#owner.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    if (!res.ok) throw new HttpError(res.status, await res.text())
    return res
  }
}
