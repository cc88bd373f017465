import type pg from 'pg'
import type { CreateUserResult, UserRecord } from '../store.js'
import { transaction } from './connect.js'

/** Thrown inside a transaction to roll it back when the user appeared meanwhile. */
class UserExists extends Error {}

const CREATE_USER = 'INSERT INTO users (id, created_at, usage) VALUES ($1, $2, 0) ON CONFLICT (id) DO NOTHING'

/**
 * Users, signup tokens, the AuthToken replay set and the homeserver key: each a row whose
 * uniqueness PostgreSQL enforces, so every "exactly once" holds across processes without
 * any lock of ours — the losing statement waits for the winner's row, then finds it taken.
 */
export class AccountTables {
  readonly #pool: pg.Pool

  constructor(pool: pg.Pool) {
    this.#pool = pool
  }

  async user(user: string): Promise<UserRecord | undefined> {
    const { rows } = await this.#pool.query<{ created_at: number; usage: number }>('SELECT created_at, usage FROM users WHERE id = $1', [user])
    const row = rows[0]
    return row === undefined ? undefined : { createdAt: row.created_at, usage: row.usage }
  }

  async totals(): Promise<{ users: number; bytes: number }> {
    const { rows } = await this.#pool.query<{ users: string; bytes: string }>('SELECT count(*) AS users, coalesce(sum(usage), 0) AS bytes FROM users')
    return { users: Number(rows[0]!.users), bytes: Number(rows[0]!.bytes) }
  }

  /**
   * With a token: one transaction redeems it only if still unused (`used_by IS NULL`, which
   * a concurrent redeemer's committed UPDATE makes false) and inserts the user; if the user
   * was created meanwhile, the redemption rolls back and the token stays usable.
   */
  async createUser(user: string, createdAt: number, token?: string): Promise<CreateUserResult> {
    if (token === undefined) {
      const r = await this.#pool.query(CREATE_USER, [user, createdAt])
      return r.rowCount === 1 ? 'created' : 'exists'
    }
    try {
      return await transaction(this.#pool, async (tx): Promise<CreateUserResult> => {
        if ((await tx.query('SELECT 1 FROM users WHERE id = $1', [user])).rowCount !== 0) return 'exists'
        const redeemed = await tx.query(
          'UPDATE signup_tokens SET used_by = $2, used_at = $3 WHERE token = $1 AND used_by IS NULL',
          [token, user, createdAt],
        )
        if (redeemed.rowCount === 0) {
          const known = await tx.query('SELECT 1 FROM signup_tokens WHERE token = $1', [token])
          return known.rowCount === 0 ? 'unknown-token' : 'used-token'
        }
        if ((await tx.query(CREATE_USER, [user, createdAt])).rowCount === 0) throw new UserExists()
        return 'created'
      })
    } catch (err) {
      if (err instanceof UserExists) return 'exists'
      throw err
    }
  }

  async addSignupToken(token: string, createdAt: number): Promise<boolean> {
    const r = await this.#pool.query(
      'INSERT INTO signup_tokens (token, created_at) VALUES ($1, $2) ON CONFLICT (token) DO NOTHING',
      [token, createdAt],
    )
    return r.rowCount === 1
  }

  async claimToken(key: string, expiresAt: number): Promise<boolean> {
    const r = await this.#pool.query('INSERT INTO replay (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING', [
      Buffer.from(key, 'utf8'),
      expiresAt,
    ])
    return r.rowCount === 1
  }

  async forgetTokens(now: number): Promise<number> {
    const r = await this.#pool.query('DELETE FROM replay WHERE expires_at < $1', [now])
    return r.rowCount ?? 0
  }

  /** Insert-if-absent, then read: of instances starting together, the first insert wins for all. */
  async homeserverSecret(generate: () => Uint8Array): Promise<Uint8Array> {
    const read = async (): Promise<Uint8Array | undefined> => {
      const { rows } = await this.#pool.query<{ value: Buffer }>("SELECT value FROM meta WHERE key = 'homeserver_secret'")
      return rows[0] === undefined ? undefined : new Uint8Array(rows[0].value)
    }
    const stored = await read()
    if (stored !== undefined) return stored
    await this.#pool.query("INSERT INTO meta (key, value) VALUES ('homeserver_secret', $1) ON CONFLICT (key) DO NOTHING", [
      Buffer.from(generate()),
    ])
    return (await read())!
  }
}
