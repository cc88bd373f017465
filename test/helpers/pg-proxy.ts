import { Transform } from 'node:stream'
import type { Teardown } from './server.js'
import { TcpProxy } from './tcp-proxy.js'

/** Message types of PostgreSQL's protocol, as the server sends them. */
const NOTIFICATION = 0x41 // 'A'
const COMMAND_COMPLETE = 0x43 // 'C'
const READY_FOR_QUERY = 0x5a // 'Z'
const COMMIT_TAG = Buffer.from('COMMIT\0')

/** One connection's stream of server messages, as the proxy forwards it. */
interface Connection {
  /** messages held back, in order, until `release()` */
  held: Buffer[]
  /** the server just answered a COMMIT that `holdAfterCommit` armed */
  afterCommit: boolean
  out: Transform
}

/**
 * A TCP proxy in front of PostgreSQL that reads what the server sends as protocol messages
 * (a type byte, then a 4-byte length) and brings about, on demand, what a network or a busy
 * database does to a client: notifications lost while the connection stays up, answers that
 * arrive late, a connection cut once the server has committed but before the client hears it.
 * `url` is the database's URL through the proxy. (Hearth connects without TLS, so every
 * message the server sends has this framing.)
 */
export class PgProxy {
  readonly url: string
  readonly tcp: TcpProxy
  /** NOTIFY messages are dropped on the way; the connections stay up */
  dropNotifications = false
  notificationsDropped = 0
  commitsCut = 0
  /** how many server messages so far held each text watched for (`answered`) */
  readonly #seen = new Map<string, number>()
  readonly #connections = new Set<Connection>()
  #cutCommits = 0
  #holdAfterCommitMs: number | undefined
  #holding = false

  private constructor(url: string, tcp: TcpProxy) {
    this.url = url
    this.tcp = tcp
  }

  /** A proxy in front of the database at `databaseUrl`, closed at teardown. */
  static async start(t: Teardown, databaseUrl: string): Promise<PgProxy> {
    let self: PgProxy | undefined
    const tcp = await TcpProxy.start(t, databaseUrl, (cut) => self!.#connection(cut))
    const url = new URL(databaseUrl)
    url.host = new URL(tcp.url).host
    self = new PgProxy(url.toString(), tcp)
    return self
  }

  /** The next `n` COMMITs: each committed by the server, its connection cut before the answer reaches the client. */
  cutAfterCommit(n = 1): void {
    this.#cutCommits += n
  }

  /** From now on answers wait here, in order, until `release()`; notifications still pass. */
  hold(): void {
    this.#holding = true
  }

  release(): void {
    this.#holding = false
    for (const c of this.#connections) {
      for (const msg of c.held.splice(0)) c.out.push(msg)
    }
  }

  /**
   * How many messages the server has sent, forwarded or held, that hold `text` (a column name,
   * say: a query's row description names its columns), counted from the first call for `text`.
   */
  answered(text: string): number {
    if (!this.#seen.has(text)) this.#seen.set(text, 0)
    return this.#seen.get(text)!
  }

  /**
   * Once the next COMMIT has been answered in full, every answer is held back for `ms`: the
   * client's commit completes, and whatever it reads next is late.
   */
  holdAfterCommit(ms: number): void {
    this.#holdAfterCommitMs = ms
  }

  #connection(cut: () => void): Transform {
    let pending = Buffer.alloc(0)
    const proxy = this
    const c: Connection = {
      held: [],
      afterCommit: false,
      out: new Transform({
        transform(chunk: Buffer, _encoding, done) {
          pending = Buffer.concat([pending, chunk])
          while (pending.length >= 5) {
            const end = 1 + pending.readInt32BE(1)
            if (pending.length < end) break
            const msg = pending.subarray(0, end)
            pending = pending.subarray(end)
            if (!proxy.#pass(c, msg, cut)) break
          }
          done()
        },
      }),
    }
    this.#connections.add(c)
    c.out.on('close', () => this.#connections.delete(c))
    return c.out
  }

  /** Forwards, holds or drops one message; false once the connection is cut. */
  #pass(c: Connection, msg: Buffer, cut: () => void): boolean {
    const type = msg[0]
    for (const [text, n] of this.#seen) if (msg.includes(text)) this.#seen.set(text, n + 1)
    if (type === NOTIFICATION) {
      if (this.dropNotifications) this.notificationsDropped++
      else c.out.push(msg)
      return true
    }
    const commit = type === COMMAND_COMPLETE && msg.subarray(5).equals(COMMIT_TAG)
    if (commit && this.#cutCommits > 0) {
      this.#cutCommits--
      this.commitsCut++
      cut()
      return false
    }
    if (commit && this.#holdAfterCommitMs !== undefined) c.afterCommit = true
    if (this.#holding || c.held.length > 0) c.held.push(msg)
    else c.out.push(msg)
    if (type === READY_FOR_QUERY && c.afterCommit) {
      c.afterCommit = false
      const ms = this.#holdAfterCommitMs!
      this.#holdAfterCommitMs = undefined
      this.hold()
      setTimeout(() => this.release(), ms).unref()
    }
    return true
  }
}
