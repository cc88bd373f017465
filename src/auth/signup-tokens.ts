import { randomBytes } from 'node:crypto'
import base32Encode from 'base32-encode'
import { fail } from '../errors.js'
import { asText, type BatchOp, type KV } from '../kv/backend.js'

/**
 * The invitation tokens that gate signing up in `token` mode.
 * As upstream, a token is 7 random bytes in Crockford base32 (12 characters),
 * hyphenated every 4: `XXXX-XXXX-XXXX`. A used token is kept, marked with its user, so
 * reuse can be told apart from a typo.
 */
const TOKEN = /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/

export function isSignupToken(text: string): boolean {
  return TOKEN.test(text)
}

export function randomSignupToken(): string {
  return base32Encode(randomBytes(7), 'Crockford').match(/.{4}/g)!.join('-')
}

interface StoredToken {
  createdAt: number
  usedBy: string | null
}

export type Clock = { now?: () => number }

export class SignupTokens {
  readonly #kv: KV
  readonly #now: () => number
  readonly #serial = new Serial()

  constructor(kv: KV, options: Clock = {}) {
    this.#kv = kv
    this.#now = options.now ?? Date.now
  }

  async generate(): Promise<string> {
    let token = randomSignupToken()
    while ((await this.#kv.get('signupTokens', token)) !== undefined) token = randomSignupToken()
    const stored: StoredToken = { createdAt: this.#now(), usedBy: null }
    await this.#kv.batch([{ type: 'put', ns: 'signupTokens', key: token, value: JSON.stringify(stored) }], { sync: true })
    return token
  }

  /**
   * Marks `token` used by `user`, in one synced batch with `alsoWrite`. Consumptions run one
   * at a time, so of two racing for the same token exactly one succeeds.
   */
  consume(token: string, user: string, alsoWrite: BatchOp[] = []): Promise<void> {
    return this.#serial.run(async () => {
      if (!isSignupToken(token)) fail('BadRequest', 'Invalid signup token format')
      const text = asText(await this.#kv.get('signupTokens', token))
      if (text === undefined) fail('Unauthorized', 'Invalid token')
      const stored = JSON.parse(text) as StoredToken
      if (stored.usedBy !== null) fail('Unauthorized', 'Token already used')
      const used: StoredToken = { ...stored, usedBy: user }
      const op: BatchOp = { type: 'put', ns: 'signupTokens', key: token, value: JSON.stringify(used) }
      await this.#kv.batch([op, ...alsoWrite], { sync: true })
    })
  }
}

/** Runs work one job at a time, in call order; a failed job does not stop the next. */
export class Serial {
  #tail: Promise<unknown> = Promise.resolve()

  run<T>(work: () => Promise<T>): Promise<T> {
    const job = this.#tail.then(work)
    this.#tail = job.catch(() => undefined)
    return job
  }
}
