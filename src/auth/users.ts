import { fail } from '../errors.js'
import { asText, type BatchOp, type KV } from '../kv/backend.js'
import { Serial, SignupTokens, type Clock } from './signup-tokens.js'

/** A user's record; `usage` belongs to the write path, which keeps it current. */
export interface UserRecord {
  createdAt: number
  usage: number
}

export class UserStore {
  readonly #kv: KV
  readonly #tokens: SignupTokens
  readonly #now: () => number
  readonly #serial = new Serial()

  constructor(kv: KV, tokens: SignupTokens, options: Clock = {}) {
    this.#kv = kv
    this.#tokens = tokens
    this.#now = options.now ?? Date.now
  }

  async get(user: string): Promise<UserRecord | undefined> {
    const text = asText(await this.#kv.get('users', user))
    return text === undefined ? undefined : (JSON.parse(text) as UserRecord)
  }

  async exists(user: string): Promise<boolean> {
    return (await this.#kv.get('users', user)) !== undefined
  }

  /**
   * Creates `user` (409 if it exists), consuming `signupToken` in the same batch when one
   * is given. Creations run one at a time, so a user is never created twice.
   */
  create(user: string, signupToken?: string): Promise<UserRecord> {
    return this.#serial.run(async () => {
      if (await this.exists(user)) fail('Conflict', 'User already exists')
      const record: UserRecord = { createdAt: this.#now(), usage: 0 }
      const op: BatchOp = { type: 'put', ns: 'users', key: user, value: JSON.stringify(record) }
      if (signupToken === undefined) await this.#kv.batch([op], { sync: true })
      else await this.#tokens.consume(signupToken, user, [op])
      return record
    })
  }
}
