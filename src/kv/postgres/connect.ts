import pg from 'pg'
import type { StoreLog } from './log-types.js'

/** Anything that runs a query: the pool, or the client a transaction holds. */
export type Queryable = Pick<pg.Pool, 'query'>

export interface ConnectOptions {
  /** connections in the pool; LISTEN takes one more of its own */
  max?: number
  log: StoreLog
  /** the longest a statement waits for a lock (the commit lock held from outside, say) */
  lockTimeoutMs?: number
  /** the longest one statement runs */
  statementTimeoutMs?: number
}

const CONNECT_TIMEOUT_MS = 10_000
/**
 * A database that is stuck (a lock held from outside, a statement that never ends) turns into
 * errors the client sees, and a writer `/readyz` reports stuck, within these bounds rather than
 * holding requests forever. Every statement Hearth runs takes milliseconds; these are far above.
 */
export const LOCK_TIMEOUT_MS = 10_000
export const STATEMENT_TIMEOUT_MS = 60_000

/**
 * Every `bigint` column comes back as a JS number: seqs, sizes and times stay far below
 * 2^53 (see src/events/event.ts), and one numeric type keeps callers free of strings.
 */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
}

/** Settings shared by the pool and the LISTEN connection. */
export function clientConfig(url: string): pg.ClientConfig {
  return {
    connectionString: url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    application_name: 'hearth',
    // a peer that vanished (a host gone, a network cut) is noticed in tens of seconds, not hours
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    types,
  }
}

export function connect(url: string, options: ConnectOptions): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(url),
    max: options.max ?? 10,
    lock_timeout: options.lockTimeoutMs ?? LOCK_TIMEOUT_MS,
    statement_timeout: options.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS,
  })
  // an idle connection that breaks (PostgreSQL restarted) is dropped by the pool; the next
  // query opens a fresh one. Unlistened, the event would end the process.
  pool.on('error', (err) => options.log.warn({ err: err.message }, 'a PostgreSQL connection broke; it will be replaced'))
  return pool
}

/**
 * Runs `work` in a transaction on one pooled connection (`withClient`): COMMIT when it
 * resolves, ROLLBACK when it throws.
 */
export function transaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withClient(pool, async (client) => {
    try {
      await client.query('BEGIN')
      const result = await work(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      // on a connection that died, ROLLBACK fails too (and the server has rolled back already)
      await client.query('ROLLBACK').catch(() => {})
      throw err
    }
  })
}

/**
 * Runs `work` on one pooled connection (`checkout`), and gives it back after; a connection
 * that broke on the way is destroyed rather than returned to the pool.
 */
export async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const { client, broken, done } = await checkout(pool)
  try {
    return await work(client)
  } finally {
    done()
    client.release(broken())
  }
}

/**
 * A pooled connection with an error listener of ours. While a client is checked out the
 * pool no longer listens for its errors, and an error event nobody listens to ends the
 * process; the listener is attached in the pool's callback, not after an `await`, because
 * a connection terminated as it is handed out reports it in that very tick.
 */
export interface Checkout {
  client: pg.PoolClient
  /** the error the connection reported, if it broke */
  broken: () => Error | undefined
  /** removes our listener, before the client goes back to the pool */
  done: () => void
}

export function checkout(pool: pg.Pool): Promise<Checkout> {
  return new Promise((resolve, reject) => {
    pool.connect((err, client) => {
      if (err !== undefined || client === undefined) return reject(err ?? new Error('no connection'))
      let broken: Error | undefined
      const onError = (e: Error) => void (broken ??= e)
      client.on('error', onError)
      resolve({ client, broken: () => broken, done: () => void client.removeListener('error', onError) })
    })
  })
}

/** The URL without its password: safe for logs and start-up lines. */
export function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return 'postgres://(unparseable URL)'
  }
}
