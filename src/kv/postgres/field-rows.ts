import type pg from 'pg'
import { withClient } from './connect.js'

/** One row as PostgreSQL sent it: each column's text, or null. */
export type Fields = (string | null)[]

/** A parameter of a read: text, a number (sent as its decimal text), bytes, or null. */
export type Param = string | number | Buffer | null

/** The columns a read selects, and how a row of them becomes a value. */
export interface RowShape<R> {
  columns: string
  row: (fields: Fields) => R
}

/**
 * Runs a SELECT whose rows `row` makes straight from each row's text fields, through pg's
 * Submittable interface (the one pg-cursor is built on). pg's own query makes each row through
 * its Result, and in a long read those rows outlived two scavenges, so V8 promoted them and
 * old space grew to its limit: for 500,000 rows read 256 at a time, 143 MB promoted through
 * pg's query and 0.8 MB through this one (README, Known limits). Used where pages of many rows
 * are read: snapshots and listings of files.
 */
export async function selectRows<R>(db: pg.Pool | pg.PoolClient, text: string, values: readonly Param[], row: (fields: Fields) => R): Promise<R[]> {
  if ('release' in db) return run(db, text, values, row)
  // a pool answers a Submittable only through one of its clients
  return withClient(db, (client) => run(client, text, values, row))
}

function run<R>(client: pg.PoolClient, text: string, values: readonly Param[], row: (fields: Fields) => R): Promise<R[]> {
  const query = new FieldRowsQuery(text, values.map((v) => (typeof v === 'number' ? String(v) : v)), row)
  client.query(query)
  return query.done
}

/**
 * The extended protocol's parse, bind, describe, execute and sync, as pg's own query sends them
 * for a statement with parameters, with text results; pg calls the handlers below with what the
 * server answers.
 */
class FieldRowsQuery<R> implements pg.Submittable {
  readonly done: Promise<R[]>
  readonly #text: string
  readonly #values: (string | Buffer | null)[]
  readonly #row: (fields: Fields) => R
  readonly #rows: R[] = []
  #resolve!: (rows: R[]) => void
  #reject!: (err: Error) => void
  #failed = false

  constructor(text: string, values: (string | Buffer | null)[], row: (fields: Fields) => R) {
    this.#text = text
    this.#values = values
    this.#row = row
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
  }

  submit(connection: pg.Connection): void {
    // one write for the five messages, as pg's own query does
    const stream = connection.stream as pg.Connection['stream'] & { cork?: () => void; uncork?: () => void }
    stream.cork?.()
    try {
      connection.parse({ name: '', text: this.#text, types: [] }, true)
      connection.bind({ values: this.#values }, true)
      connection.describe({ type: 'P' }, true)
      connection.execute({}, true)
      connection.sync()
    } finally {
      stream.uncork?.()
    }
  }

  handleRowDescription(): void {}

  handleDataRow(msg: { fields: Fields }): void {
    if (this.#failed) return
    try {
      this.#rows.push(this.#row(msg.fields))
    } catch (err) {
      this.handleError(err as Error)
    }
  }

  handleCommandComplete(): void {}

  handleEmptyQuery(): void {}

  /** The server's error (ReadyForQuery follows it) or the connection's (nothing follows it). */
  handleError(err: Error): void {
    this.#failed = true
    this.#reject(err)
  }

  handleReadyForQuery(): void {
    if (!this.#failed) this.#resolve(this.#rows)
  }
}
