import { randomBytes } from 'node:crypto'
import base32Encode from 'base32-encode'
import { asText, type KV } from '../kv/backend.js'
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

interface StoredSession {
  user: string
  capabilities: string
  createdAt: number
}

const SECRET = /^[0-9A-HJKMNP-TV-Z]{26}$/

export function isSessionSecret(text: string): boolean {
  return SECRET.test(text)
}

/** Sessions kept in memory, newest use last: every write checks one, so most hit here. */
const CACHE_ENTRIES = 10_000

export class SessionStore {
  readonly #kv: KV
  readonly #now: () => number
  readonly #cache = new Map<string, Session>()

  constructor(kv: KV, options: { now?: () => number } = {}) {
    this.#kv = kv
    this.#now = options.now ?? Date.now
  }

  async create(user: string, capabilities: readonly Capability[]): Promise<{ secret: string; session: Session }> {
    const secret = base32Encode(randomBytes(16), 'Crockford')
    const session: Session = { user, capabilities: [...capabilities], createdAt: Math.floor(this.#now() * 1000) }
    const stored: StoredSession = { user, capabilities: formatCapabilities(capabilities), createdAt: session.createdAt }
    await this.#kv.batch([{ type: 'put', ns: 'sessions', key: secret, value: JSON.stringify(stored) }], { sync: true })
    this.#remember(secret, session)
    return { secret, session }
  }

  /** The session for a cookie value; anything that is not a live secret gives undefined. */
  async get(secret: string): Promise<Session | undefined> {
    if (!isSessionSecret(secret)) return undefined
    const cached = this.#cache.get(secret)
    if (cached !== undefined) {
      this.#remember(secret, cached)
      return cached
    }
    const text = asText(await this.#kv.get('sessions', secret))
    if (text === undefined) return undefined
    const stored = JSON.parse(text) as StoredSession
    const session = { user: stored.user, capabilities: parseCapabilities(stored.capabilities), createdAt: stored.createdAt }
    // A delete that raced this read must win: only cache what is still stored.
    if ((await this.#kv.get('sessions', secret)) !== undefined) this.#remember(secret, session)
    return session
  }

  #remember(secret: string, session: Session): void {
    this.#cache.delete(secret)
    this.#cache.set(secret, session)
    if (this.#cache.size > CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!)
  }

  async delete(secret: string): Promise<void> {
    if (!isSessionSecret(secret)) return
    this.#cache.delete(secret)
    await this.#kv.batch([{ type: 'del', ns: 'sessions', key: secret }], { sync: true })
    this.#cache.delete(secret)
  }
}
