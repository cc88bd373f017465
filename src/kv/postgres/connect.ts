import postgres from 'postgres'

/** A connection pool, or a transaction on one of its connections. */
export type Sql = postgres.Sql
export type Queryable = postgres.ISql

export interface ConnectOptions {
  /** connections in the pool; LISTEN takes one more of its own */
  max?: number
  /** seconds to wait for a connection before a query fails */
  connectTimeout?: number
}

/**
 * Opens a pool on `url`. Every `bigint` column comes back as a JS number: seqs, sizes and
 * times stay far below 2^53 (see src/events/event.ts), and one numeric type keeps callers
 * free of string-or-bigint handling.
 */
export function connect(url: string, options: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    connect_timeout: options.connectTimeout ?? 10,
    // CREATE ... IF NOT EXISTS and friends talk in NOTICEs; they are not worth a log line
    onnotice: () => {},
    connection: { application_name: 'hearth' },
    types: {
      int8: { to: 20, from: [20], serialize: (x: number) => String(x), parse: (x: string) => Number(x) },
    },
  }) as unknown as Sql
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
