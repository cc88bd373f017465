import type { CreateUserResult, UserRecord } from '../store.js'
import type { Sql } from './connect.js'

/** Thrown inside a transaction to roll it back when the user appeared meanwhile. */
class UserExists extends Error {}

/**
 * Users, signup tokens, the AuthToken replay set and the homeserver key: each a row whose
 * uniqueness PostgreSQL enforces, so every "exactly once" holds across processes without
 * any lock of ours — the losing statement waits for the winner's row, then finds it taken.
 */
export class AccountTables {
  readonly #sql: Sql

  constructor(sql: Sql) {
    this.#sql = sql
  }

  async user(user: string): Promise<UserRecord | undefined> {
    const [row] = await this.#sql<{ created_at: number; usage: number }[]>`
      SELECT created_at, usage FROM users WHERE id = ${user}`
    return row === undefined ? undefined : { createdAt: row.created_at, usage: row.usage }
  }

  /**
   * With a token: one transaction redeems it only if still unused (`used_by IS NULL`, which
   * a concurrent redeemer's committed UPDATE makes false) and inserts the user; if the user
   * was created meanwhile, the redemption rolls back and the token stays usable.
   */
  async createUser(user: string, createdAt: number, token?: string): Promise<CreateUserResult> {
    if (token === undefined) {
      const r = await this.#sql`
        INSERT INTO users (id, created_at, usage) VALUES (${user}, ${createdAt}, 0) ON CONFLICT (id) DO NOTHING`
      return r.count === 1 ? 'created' : 'exists'
    }
    try {
      return await this.#sql.begin(async (tx): Promise<CreateUserResult> => {
        const [exists] = await tx`SELECT 1 FROM users WHERE id = ${user}`
        if (exists !== undefined) return 'exists'
        const redeemed = await tx`
          UPDATE signup_tokens SET used_by = ${user}, used_at = ${createdAt}
          WHERE token = ${token} AND used_by IS NULL`
        if (redeemed.count === 0) {
          const [known] = await tx`SELECT 1 FROM signup_tokens WHERE token = ${token}`
          return known === undefined ? 'unknown-token' : 'used-token'
        }
        const inserted = await tx`
          INSERT INTO users (id, created_at, usage) VALUES (${user}, ${createdAt}, 0) ON CONFLICT (id) DO NOTHING`
        if (inserted.count === 0) throw new UserExists()
        return 'created'
      })
    } catch (err) {
      if (err instanceof UserExists) return 'exists'
      throw err
    }
  }

  async addSignupToken(token: string, createdAt: number): Promise<boolean> {
    const r = await this.#sql`
      INSERT INTO signup_tokens (token, created_at) VALUES (${token}, ${createdAt}) ON CONFLICT (token) DO NOTHING`
    return r.count === 1
  }

  async claimToken(key: string, expiresAt: number): Promise<boolean> {
    const r = await this.#sql`
      INSERT INTO replay (key, expires_at) VALUES (${Buffer.from(key, 'utf8')}, ${expiresAt}) ON CONFLICT (key) DO NOTHING`
    return r.count === 1
  }

  async forgetTokens(now: number): Promise<number> {
    const r = await this.#sql`DELETE FROM replay WHERE expires_at < ${now}`
    return r.count
  }

  /** Insert-if-absent, then read: of instances starting together, the first insert wins for all. */
  async homeserverSecret(generate: () => Uint8Array): Promise<Uint8Array> {
    const read = async (): Promise<Uint8Array | undefined> => {
      const [row] = await this.#sql<{ value: Buffer }[]>`SELECT value FROM meta WHERE key = 'homeserver_secret'`
      return row === undefined ? undefined : new Uint8Array(row.value)
    }
    const stored = await read()
    if (stored !== undefined) return stored
    const fresh = generate()
    await this.#sql`
      INSERT INTO meta (key, value) VALUES ('homeserver_secret', ${Buffer.from(fresh)}) ON CONFLICT (key) DO NOTHING`
    return (await read())!
  }
}
