import { randomBytes } from 'node:crypto'
import base32Encode from 'base32-encode'
import type { Store } from '../kv/store.js'

/**
 * The invitation tokens that gate signing up in `token` mode.
 * As upstream, a token is 7 random bytes in Crockford base32 (12 characters),
 * hyphenated every 4: `XXXX-XXXX-XXXX`. A used token is kept, marked with its user, so
 * reuse can be told apart from a typo. Redeeming happens with the user's creation, in one
 * transaction of the store (UserStore.create), so a token is redeemed once across processes.
 */
const TOKEN = /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/

export function isSignupToken(text: string): boolean {
  return TOKEN.test(text)
}

export function randomSignupToken(): string {
  return base32Encode(randomBytes(7), 'Crockford').match(/.{4}/g)!.join('-')
}

export type Clock = { now?: () => number }

export class SignupTokens {
  readonly #store: Store
  readonly #now: () => number

  constructor(store: Store, options: Clock = {}) {
    this.#store = store
    this.#now = options.now ?? Date.now
  }

  async generate(): Promise<string> {
    for (;;) {
      const token = randomSignupToken()
      if (await this.#store.addSignupToken(token, this.#now())) return token
    }
  }
}
