import net from 'node:net'
import type { Transform } from 'node:stream'
import type { Teardown } from './server.js'

/**
 * What the proxy does with connections: `pass` forwards them to the target; `refuse` accepts
 * and closes them at once (the server looks gone); `silent` accepts and never says a byte
 * (a server that hangs); `unavailable` answers each request `503` and closes (a server
 * overloaded, or a gateway whose backend is down).
 */
export type ProxyMode = 'pass' | 'refuse' | 'silent' | 'unavailable'

/**
 * What stands between the target and the client on each forwarded connection: it is given
 * what the target sends, passes on what it will, and may end the connection (`cut`).
 */
export type FromTarget = (cut: () => void) => Transform

const UNAVAILABLE = 'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'

/**
 * A TCP proxy on 127.0.0.1 in front of a real server, for fault injection: the client keeps
 * one address while the test takes the server away, makes it hang, or moves it to another
 * port (a restart). Changing the mode cuts every open connection.
 */
export class TcpProxy {
  readonly #server: net.Server
  readonly #open = new Set<net.Socket>()
  readonly #fromTarget: FromTarget | undefined
  #target: URL
  #mode: ProxyMode = 'pass'
  #url = ''

  private constructor(target: string, fromTarget: FromTarget | undefined) {
    this.#target = new URL(target)
    this.#fromTarget = fromTarget
    this.#server = net.createServer((client) => this.#accept(client))
  }

  static async start(t: Teardown, target: string, fromTarget?: FromTarget): Promise<TcpProxy> {
    const proxy = new TcpProxy(target, fromTarget)
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve))
    proxy.#url = `http://127.0.0.1:${(proxy.#server.address() as net.AddressInfo).port}`
    t.teardown(() => proxy.close())
    return proxy
  }

  /** `http://127.0.0.1:<port>`: where clients connect */
  get url(): string {
    return this.#url
  }

  set mode(mode: ProxyMode) {
    this.#mode = mode
    this.cut()
  }

  /** Where `pass` forwards from now on (a restarted server's new URL). */
  set target(url: string) {
    this.#target = new URL(url)
    this.cut()
  }

  /** Ends every open connection. */
  cut(): void {
    for (const s of this.#open) s.destroy()
    this.#open.clear()
  }

  close(): Promise<void> {
    this.cut()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  #track(s: net.Socket): void {
    this.#open.add(s)
    s.on('close', () => this.#open.delete(s))
    s.on('error', () => s.destroy())
  }

  #accept(client: net.Socket): void {
    this.#track(client)
    if (this.#mode === 'refuse') return void client.destroy()
    if (this.#mode === 'silent') return void client.resume()
    if (this.#mode === 'unavailable') return void client.once('data', () => client.end(UNAVAILABLE))
    const upstream = net.connect(Number(this.#target.port), this.#target.hostname)
    this.#track(upstream)
    // each message on as it comes: a proxy that batched small writes would slow every round trip
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    client.pipe(upstream)
    const between = this.#fromTarget?.(() => {
      client.destroy()
      upstream.destroy()
    })
    if (between === undefined) upstream.pipe(client)
    else upstream.pipe(between).pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  }
}
