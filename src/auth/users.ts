import { fail } from '../errors.js'
import type { Store, UserRecord } from '../kv/store.js'
import { isSignupToken, type Clock } from './signup-tokens.js'

export type { UserRecord }

export class UserStore {
  readonly #store: Store
  readonly #now: () => number

  constructor(store: Store, options: Clock = {}) {
    this.#store = store
    this.#now = options.now ?? Date.now
  }

  get(user: string): Promise<UserRecord | undefined> {
    return this.#store.user(user)
  }

  async exists(user: string): Promise<boolean> {
    return (await this.#store.user(user)) !== undefined
  }

  /**
   * Creates `user` (409 if it exists), redeeming `signupToken` in the same transaction when
   * one is given: of two sign-ups racing for one token, in any processes, one succeeds.
   */
  async create(user: string, signupToken?: string): Promise<UserRecord> {
    if (signupToken !== undefined && !isSignupToken(signupToken)) fail('BadRequest', 'Invalid signup token format')
    const createdAt = this.#now()
    const result = await this.#store.createUser(user, createdAt, signupToken)
    if (result === 'exists') fail('Conflict', 'User already exists')
    if (result === 'unknown-token') fail('Unauthorized', 'Invalid token')
    if (result === 'used-token') fail('Unauthorized', 'Token already used')
    return { createdAt, usage: 0 }
  }
}
