import { randomBytes } from 'node:crypto'
import base32Encode from 'base32-encode'
import type { SessionRecord, Store } from '../kv/store.js'
import { formatCapabilities, parseCapabilities, type Capability } from './capabilities.js'

/**
 * Sessions, keyed by their secret: the value of the cookie named after the user's z32 key.
 * As upstream, a secret is 16 random bytes in Crockford base32, 26 characters.
 */
export interface Session {
  user: string
  capabilities: Capability[]
  /** Microseconds since the epoch, as SessionInfo carries it. */
  createdAt: number
}

const SECRET = /^[0-9A-HJKMNP-TV-Z]{26}$/

export function isSessionSecret(text: string): boolean {
  return SECRET.test(text)
}

/** Sessions kept in memory, newest use last: every write checks one, so most hit here. */
const CACHE_ENTRIES = 10_000

export interface SessionOptions {
  now?: () => number
  /** sessions older than this (ms) are signed out; undefined keeps them until sign-out */
  ttlMs?: number
}

/**
 * The cache serves one process only: where several processes share the store, a sign-out
 * elsewhere must be seen at once, so every lookup reads the store.
 */
export class SessionStore {
  readonly #store: Store
  readonly #now: () => number
  readonly #ttlMs: number | undefined
  readonly #cache: Map<string, Session> | undefined

  constructor(store: Store, options: SessionOptions = {}) {
    this.#store = store
    this.#now = options.now ?? Date.now
    this.#ttlMs = options.ttlMs
    this.#cache = store.supports.manyProcesses ? undefined : new Map()
    store.onSessionDeleted((secret) => this.#cache?.delete(secret))
  }

  async create(user: string, capabilities: readonly Capability[]): Promise<{ secret: string; session: Session }> {
    const secret = base32Encode(randomBytes(16), 'Crockford')
    const session: Session = { user, capabilities: [...capabilities], createdAt: Math.floor(this.#now() * 1000) }
    const stored: SessionRecord = { user, capabilities: formatCapabilities(capabilities), createdAt: session.createdAt }
    await this.#store.putSession(secret, stored)
    this.#remember(secret, session)
    return { secret, session }
  }

  /** The session for a cookie value; anything that is not a live secret gives undefined. */
  async get(secret: string): Promise<Session | undefined> {
    if (!isSessionSecret(secret)) return undefined
    let session = this.#cache?.get(secret)
    if (session === undefined) {
      const stored = await this.#store.session(secret)
      if (stored === undefined) return undefined
      session = { user: stored.user, capabilities: parseCapabilities(stored.capabilities), createdAt: stored.createdAt }
      // A delete that raced this read must win: only cache what is still stored.
      if (this.#cache !== undefined && (await this.#store.session(secret)) === undefined) return undefined
    }
    if (this.#ttlMs !== undefined && this.#now() - session.createdAt / 1000 > this.#ttlMs) {
      await this.delete(secret)
      return undefined
    }
    this.#remember(secret, session)
    return session
  }

  /** Removes the sessions that have expired from storage; resolves with how many. */
  async sweep(): Promise<number> {
    if (this.#ttlMs === undefined) return 0
    return this.#store.forgetSessions(Math.floor((this.#now() - this.#ttlMs) * 1000))
  }

  /** How long `session` has to live (ms, at least 0), or undefined when sessions do not expire. */
  timeLeft(session: Session): number | undefined {
    if (this.#ttlMs === undefined) return undefined
    return Math.max(0, session.createdAt / 1000 + this.#ttlMs - this.#now())
  }

  #remember(secret: string, session: Session): void {
    if (this.#cache === undefined) return
    this.#cache.delete(secret)
    this.#cache.set(secret, session)
    if (this.#cache.size > CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!)
  }

  /** Signs out: every process hears of it through the store (and ends that session's private streams). */
  async delete(secret: string): Promise<void> {
    if (!isSessionSecret(secret)) return
    this.#cache?.delete(secret)
    await this.#store.deleteSession(secret)
    this.#cache?.delete(secret)
  }

  /** Calls `listener` with the secret of every session signed out, in any process. */
  onSignOut(listener: (secret: string) => void): () => void {
    return this.#store.onSessionDeleted(listener)
  }
}
