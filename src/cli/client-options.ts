import { readFile } from 'node:fs/promises'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { z } from 'zod'
import { parseCapabilities } from '../auth/capabilities.js'
import { HomeserverClient, HttpError } from 'hearth-homeserver-client'
import { writeFileAtomic } from 'hearth-homeserver-client/atomic-file'

/**
 * What every client subcommand shares: `--url` and `--key` with their environment defaults,
 * the key file, and the session file kept beside it (`<key>.session`, mode 0600).
 */

export const DEFAULT_URL = 'http://127.0.0.1:6286'
export const DEFAULT_KEY = './hearth.key'

export const clientFlagsHelp = `  --url URL    homeserver (default: $HEARTH_URL, else ${DEFAULT_URL})
  --key FILE   secret key file (default: $HEARTH_KEY, else ${DEFAULT_KEY})`

/** A mistake in the command line: the CLI exits with status 2. */
export class UsageError extends Error {}

/** A failure worth one line and status 1, with no stack trace. */
export class CliError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>

/** `--url` and `--key`; client subcommands spread these into their own options. */
export const clientFlags = {
  url: { type: 'string' },
  key: { type: 'string' },
} as const satisfies Options

/** Options without `multiple`: a boolean flag or a string value each. */
export interface Parsed<O extends Options> {
  values: { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : string }
  positionals: string[]
}

/**
 * `--from -1`: a value that starts with `-` is still the value of the option before it, as
 * people write it; parseArgs would take it for an option of its own. Written `--from=-1`.
 */
function joinNegatives(argv: string[], options: Options): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]!.startsWith('--') ? argv[i]!.slice(2) : undefined
    const next = argv[i + 1]
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${argv[i]}=${next}`)
      i++
    } else out.push(argv[i]!)
  }
  return out
}

/** parseArgs's errors as one short line of our own. */
function usageLine(err: Error & { code?: string }): string {
  const option = /'(--?[\w-]+)/.exec(err.message)?.[1]
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option ?? ''}`.trim()
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `${option ?? 'an option'} needs a value`
  return err.message.split('\n')[0]!
}

/** `node:util` parseArgs in strict mode, with its errors turned into usage errors. */
export function parseCommand<O extends Options>(argv: string[], options: O, positionals: { min: number; max: number }): Parsed<O> {
  let parsed
  try {
    parsed = parseArgs({ args: joinNegatives(argv, options), allowPositionals: true, strict: true, options })
  } catch (err) {
    throw new UsageError(usageLine(err as Error & { code?: string }))
  }
  const count = parsed.positionals.length
  if (count < positionals.min) throw new UsageError('missing argument')
  if (count > positionals.max) throw new UsageError(`unexpected argument ${parsed.positionals[positionals.max]}`)
  return { values: parsed.values as Parsed<O>['values'], positionals: parsed.positionals }
}

export function keyFile(values: { key?: string }, env: NodeJS.ProcessEnv): string {
  return values.key ?? (env.HEARTH_KEY || DEFAULT_KEY)
}

export function homeserverUrl(values: { url?: string }, env: NodeJS.ProcessEnv): string {
  const url = values.url ?? (env.HEARTH_URL || DEFAULT_URL)
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) throw new UsageError(`--url: not an http(s) URL: ${url}`)
  return url.replace(/\/+$/, '')
}

export function checkCapabilities(text: string): string {
  try {
    parseCapabilities(text)
  } catch (err) {
    throw new UsageError(`--caps: ${(err as Error).message}`)
  }
  return text
}

const secretHex = z.string().trim().regex(/^[0-9a-fA-F]{64}$/)
// The session is kept with the homeserver it belongs to, so it is never sent to another.
const storedSession = z.object({ url: z.string(), cookie: z.string().min(1), capabilities: z.string() })
type StoredSession = z.infer<typeof storedSession>

/**
 * A HomeserverClient for the key in `--key`, with the session file's cookie. `send` signs in
 * when a request needs a session and has none, and again once when the stored one is stale.
 */
export class CliClient {
  readonly client: HomeserverClient
  readonly sessionFile: string
  #capabilities: string

  private constructor(client: HomeserverClient, sessionFile: string, capabilities: string) {
    this.client = client
    this.sessionFile = sessionFile
    this.#capabilities = capabilities
  }

  static async open(values: { url?: string; key?: string }, env: NodeJS.ProcessEnv): Promise<CliClient> {
    const url = homeserverUrl(values, env)
    const file = keyFile(values, env)
    const secret = await readSecret(file)
    const sessionFile = `${file}.session`
    const stored = await readSession(sessionFile)
    const usable = stored?.url === url ? stored : undefined
    const client = await HomeserverClient.fromSecret(url, secret, usable?.cookie)
    return new CliClient(client, sessionFile, usable?.capabilities ?? '/:rw')
  }

  get user(): string {
    return this.client.user
  }

  async signup(capabilities: string, signupToken?: string): Promise<void> {
    await this.#reach(() => this.client.signup({ capabilities, signupToken }), 'sign up')
    await this.#save(capabilities)
  }

  async signin(capabilities = this.#capabilities): Promise<void> {
    await this.#reach(() => this.client.signin(capabilities), 'sign in')
    await this.#save(capabilities)
  }

  /**
   * One request; `body` is called again for the retry, so it must give a fresh body each time.
   * Writes, private files and the user's consumers need the session.
   */
  async send(method: string, path: string, body?: () => BodyInit, query = '', headers: Record<string, string> = {}): Promise<Response> {
    const needsSession = method !== 'GET' || path.startsWith('/priv/') || path.startsWith('/consumers')
    let fresh = false
    if (needsSession && this.client.session === undefined) {
      await this.signin()
      fresh = true
    }
    const url = encodePath(path) + (query ? `?${query}` : '')
    let res = await this.#reach(() => this.client.request(method, url, body?.(), headers))
    if (res.status === 401 && !fresh) {
      await res.body?.cancel()
      await this.signin()
      res = await this.#reach(() => this.client.request(method, url, body?.(), headers))
    }
    return res
  }

  /** For bodies that cannot be sent twice (stdin): make sure the session works first. */
  async ensureSession(): Promise<void> {
    if (this.client.session !== undefined) {
      const res = await this.#reach(() => this.client.request('GET', '/session'))
      await res.body?.cancel()
      if (res.ok) return
    }
    await this.signin()
  }

  async #save(capabilities: string): Promise<void> {
    this.#capabilities = capabilities
    const stored: StoredSession = { url: this.client.url, cookie: this.client.session!, capabilities }
    // a fresh file each time: created 0600, and never seen half-written
    await writeFileAtomic(this.sessionFile, JSON.stringify(stored) + '\n', { mode: 0o600 })
  }

  async #reach<T>(call: () => Promise<T>, what?: string): Promise<T> {
    try {
      return await call()
    } catch (err) {
      throw explain(err, this.client.url, this.user, what)
    }
  }
}

/** The secret key in a key file, as 64 hex characters. */
export async function readSecret(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') throw new CliError(`no key file at ${file}: run \`hearth keygen\` first, or pass --key`)
    throw new CliError(`cannot read key file ${file}: ${err.message}`)
  })
  const secret = secretHex.safeParse(text)
  if (!secret.success) throw new CliError(`${file} is not a hearth key file (expected 64 hex characters)`)
  return secret.data
}

async function readSession(file: string): Promise<StoredSession | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  try {
    return storedSession.parse(JSON.parse(text))
  } catch {
    return undefined // a damaged session file is as good as none: the next command signs in
  }
}

/** Each segment percent-encoded, so spaces, `?` and `#` in a name reach the server intact. */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/')
}

function explain(err: unknown, url: string, user: string, what?: string): Error {
  if (err instanceof HttpError) {
    const { status, body } = err
    if (what === 'sign in' && status === 404) return new CliError(`${user} has no account on ${url}: run \`hearth signup\` first`)
    if (what === 'sign up' && status === 409) return new CliError(`${user} is already signed up on ${url}: use \`hearth signin\``)
    return new CliError(`${what ?? 'request'} failed: ${status} ${oneLine(body)}`.trimEnd())
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause
  if (err instanceof TypeError && cause !== undefined) {
    return new CliError(`cannot reach ${url}: ${cause.code ?? cause.message} (is \`hearth serve\` running there?)`)
  }
  return err instanceof Error ? err : new Error(String(err))
}

export function oneLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? ''
  return line.length > 200 ? line.slice(0, 200) + '…' : line
}

/** The error for a non-2xx answer, its body reduced to one line. */
export async function failed(res: Response, what: string): Promise<CliError> {
  const body = oneLine(await res.text().catch(() => ''))
  return new CliError(`${what}: ${res.status} ${messageOf(body) || res.statusText}`.trimEnd())
}

/** A JSON error body (`{"error","message"}`) says its message; a plain one is itself. */
function messageOf(body: string): string {
  if (!body.startsWith('{')) return body
  try {
    const parsed = JSON.parse(body) as { message?: unknown }
    return typeof parsed.message === 'string' ? oneLine(parsed.message) : body
  } catch {
    return body
  }
}
