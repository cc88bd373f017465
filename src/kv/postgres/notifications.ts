import pg from 'pg'
import { clientConfig } from './connect.js'
import { backoffDelay, type Backoff } from 'hearth-homeserver-client/backoff'
import type { StoreLog } from './log-types.js'

const RECONNECT: Backoff = { baseMs: 500, maxMs: 10_000, jitter: 0 }

/**
 * One connection that LISTENs on Hearth's channels and hands each notification to its
 * channel's handler. When the connection breaks it reconnects (backoff from 0.5 s up to
 * 10 s, for as long as it takes), LISTENs again, and only then tells `onReconnect`
 * listeners: notifications sent while it was away are lost, and they re-read what they
 * need, knowing that anything from then on will be heard.
 */
export class Notifications {
  readonly #url: string
  readonly #log: StoreLog
  readonly #handlers = new Map<string, (payload: string) => void>()
  readonly #reconnected = new Set<() => void>()
  #client: pg.Client | undefined
  #retry: NodeJS.Timeout | undefined
  #stopped = false

  constructor(url: string, log: StoreLog) {
    this.#url = url
    this.#log = log
  }

  /** Before start(): the channels are listened to when the connection opens. */
  on(channel: string, handler: (payload: string) => void): void {
    this.#handlers.set(channel, handler)
  }

  onReconnect(listener: () => void): void {
    this.#reconnected.add(listener)
  }

  /** Resolves once every channel is listened to; rejects if the first connection fails. */
  async start(): Promise<void> {
    await this.#connect()
  }

  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#retry)
    const client = this.#client
    this.#client = undefined
    await client?.end().catch(() => {})
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(clientConfig(this.#url))
    client.on('error', (err) => this.#lost(client, err))
    client.on('end', () => this.#lost(client))
    client.on('notification', (n) => this.#handlers.get(n.channel)?.(n.payload ?? ''))
    try {
      await client.connect()
      for (const channel of this.#handlers.keys()) await client.query(`LISTEN ${client.escapeIdentifier(channel)}`)
    } catch (err) {
      await client.end().catch(() => {})
      throw err
    }
    if (this.#stopped) return void (await client.end().catch(() => {}))
    this.#client = client
  }

  #lost(client: pg.Client, err?: Error): void {
    if (client !== this.#client || this.#stopped) return
    this.#client = undefined
    void client.end().catch(() => {})
    this.#log.warn({ err: err?.message }, 'the LISTEN connection to PostgreSQL broke; reconnecting')
    this.#schedule(0)
  }

  #schedule(attempt: number): void {
    this.#retry = setTimeout(() => {
      this.#connect().then(
        () => {
          if (this.#stopped) return
          this.#log.info({}, 'listening to PostgreSQL again')
          for (const listener of this.#reconnected) listener()
        },
        () => {
          if (!this.#stopped) this.#schedule(attempt + 1)
        },
      )
    }, backoffDelay(RECONNECT, attempt))
  }
}
