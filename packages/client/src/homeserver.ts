import { signAuthToken } from './auth-token.js'
import { keypairOf, secretFromHex, type Keypair } from './keys.js'

/**
 * A small client for one user of one homeserver: signs its own AuthTokens, keeps the session
 * cookie, and speaks the file API. The CLI and the tests use it; apps use the official client.
 * In a browser the cookie is the page's to keep (fetch does not show `Set-Cookie`), so this
 * client is for Node and other runtimes that do.
 */
export class HomeserverClient {
  readonly url: string
  readonly keypair: Keypair
  session: string | undefined

  constructor(url: string, keypair: Keypair, session?: string) {
    this.url = url.replace(/\/+$/, '')
    this.keypair = keypair
    this.session = session
  }

  /** The client of the user whose secret key is `secretHex` (64 hex digits). */
  static async fromSecret(url: string, secretHex: string, session?: string): Promise<HomeserverClient> {
    return new HomeserverClient(url, await keypairOf(secretFromHex(secretHex)), session)
  }

  get user(): string {
    return this.keypair.z32
  }

  async signup(options: { capabilities?: string; signupToken?: string } = {}): Promise<void> {
    const q = options.signupToken ? `?signup_token=${encodeURIComponent(options.signupToken)}` : ''
    await this.#auth(`/signup${q}`, options.capabilities ?? '/:rw')
  }

  async signin(capabilities = '/:rw'): Promise<void> {
    await this.#auth('/session', capabilities)
  }

  async #auth(route: string, capabilities: string): Promise<void> {
    const token = await signAuthToken(this.keypair, capabilities)
    const res = await fetch(this.url + route, { method: 'POST', body: token as Uint8Array<ArrayBuffer> })
    await expectOk(res)
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith(`${this.user}=`))
    if (cookie === undefined) throw new Error('the homeserver set no session cookie')
    this.session = cookie.slice(this.user.length + 1).split(';')[0]
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { 'pubky-host': this.user, ...extra }
    if (this.session !== undefined) h.cookie = `${this.user}=${this.session}`
    return h
  }

  request(method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(this.url + path, { method, headers: this.headers(headers), body, duplex: 'half' } as RequestInit)
  }

  async put(path: string, body: BodyInit): Promise<void> {
    await expectOk(await this.request('PUT', path, body))
  }

  async get(path: string): Promise<Uint8Array> {
    const res = await this.request('GET', path)
    await expectOk(res)
    return new Uint8Array(await res.arrayBuffer())
  }

  async delete(path: string): Promise<void> {
    await expectOk(await this.request('DELETE', path))
  }

  async list(dir: string, query = ''): Promise<string[]> {
    const res = await this.request('GET', dir + (query ? `?${query}` : ''))
    await expectOk(res)
    const text = await res.text()
    return text === '' ? [] : text.split('\n')
  }

  async signout(): Promise<void> {
    await expectOk(await this.request('DELETE', '/session'))
    this.session = undefined
  }
}

export class HttpError extends Error {
  constructor(readonly status: number, readonly body: string) {
    super(`HTTP ${status}: ${body}`)
  }
}

async function expectOk(res: Response): Promise<void> {
  if (!res.ok) throw new HttpError(res.status, await res.text())
}
