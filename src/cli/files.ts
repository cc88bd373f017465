import { openAsBlob } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebStream } from 'node:stream/web'
import { CliClient, CliError, clientFlags, clientFlagsHelp, failed, parseCommand, UsageError } from './client-options.js'

const PATHS = `A PATH is absolute, under /pub/ or /priv/ (e.g. /pub/hello.txt). get and ls also take
another user's pubky://<public key>/pub/... address.`

export const putHelp = `hearth put PATH [FILE|-] [--url URL] [--key FILE]

Writes FILE (or standard input, when FILE is - or left out) to PATH and prints its pubky://
address and the id of the event the write appended (for \`hearth consumer ack\` and the acked
wait). A PATH ending in / takes FILE's name. Signs in first when there is no session.

${PATHS}

${clientFlagsHelp}`

export const getHelp = `hearth get PATH [--url URL] [--key FILE]

Writes the file at PATH to standard output.

${PATHS}

${clientFlagsHelp}`

export const rmHelp = `hearth rm PATH [--url URL] [--key FILE]

Deletes the file at PATH.

${PATHS}

${clientFlagsHelp}`

export const lsHelp = `hearth ls [DIR/] [--limit N] [--cursor C] [--reverse] [--shallow] [--url URL] [--key FILE]

Lists the files under DIR (default /pub/), one pubky:// address a line, in byte order.

  --limit N    at most N entries (server default 100, at most 1000)
  --cursor C   start after this entry (a path or a pubky:// address from an earlier listing)
  --reverse    list in reverse order
  --shallow    list only DIR's own entries; folders end in /

${PATHS}

${clientFlagsHelp}`

export async function put(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, clientFlags, { min: 1, max: 2 })
  const source = positionals[1] ?? '-'
  if (positionals[1] === undefined && process.stdin.isTTY) throw new UsageError('give a FILE, or pipe the content in (or - to type it)')
  let arg = positionals[0]!
  if (arg.endsWith('/')) {
    if (source === '-') throw new UsageError(`${arg} is a folder: name the file when reading standard input`)
    arg += basename(source)
  }
  const cli = await CliClient.open(values, process.env)
  const path = target(arg, cli.user)
  const res = await cli.send('PUT', path, source === '-' ? await stdinBody(cli) : await fileBody(source))
  if (res.status !== 201) throw await failed(res, `put ${arg}`)
  await res.body?.cancel()
  process.stdout.write(`pubky://${cli.user}${path} ${res.headers.get('hearth-event-id') ?? ''}`.trimEnd() + '\n')
}

export async function get(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, clientFlags, { min: 1, max: 1 })
  const cli = await CliClient.open(values, process.env)
  const path = target(positionals[0]!, cli.user)
  const res = await cli.send('GET', path)
  if (!res.ok || res.body === null) throw await failed(res, `get ${positionals[0]}`)
  // a folder's listing is lines of text, ended like ls ends it; a file's bytes go out as they are
  if (path.endsWith('/')) {
    const text = await res.text()
    if (text !== '') process.stdout.write(text + '\n')
    return
  }
  try {
    await pipeline(Readable.fromWeb(res.body as WebStream), process.stdout)
  } catch (err) {
    // A reader that has seen enough (`| head`) is not a failure.
    if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err
  }
}

export async function rm(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, clientFlags, { min: 1, max: 1 })
  const cli = await CliClient.open(values, process.env)
  const res = await cli.send('DELETE', target(positionals[0]!, cli.user))
  if (res.status !== 204) throw await failed(res, `rm ${positionals[0]}`)
}

const lsFlags = {
  ...clientFlags,
  limit: { type: 'string' },
  cursor: { type: 'string' },
  reverse: { type: 'boolean' },
  shallow: { type: 'boolean' },
} as const

export async function ls(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, lsFlags, { min: 0, max: 1 })
  const query = new URLSearchParams()
  if (values.limit !== undefined) {
    if (!/^[1-9]\d{0,3}$/.test(values.limit) || Number(values.limit) > 1000) throw new UsageError(`--limit: expected a number from 1 to 1000, got ${values.limit}`)
    query.set('limit', values.limit)
  }
  if (values.cursor !== undefined) query.set('cursor', values.cursor)
  if (values.reverse) query.set('reverse', 'true')
  if (values.shallow) query.set('shallow', 'true')
  const arg = positionals[0] ?? '/pub/'
  const cli = await CliClient.open(values, process.env)
  const dir = target(arg.endsWith('/') ? arg : arg + '/', cli.user)
  const res = await cli.send('GET', dir, undefined, query.toString())
  if (!res.ok) throw await failed(res, `ls ${arg}`)
  const text = await res.text()
  if (text !== '') process.stdout.write(text + '\n')
}

/**
 * The request path for an argument: `/pub/x` (or `pub/x`) is the user's own file; a
 * `pubky://<key>/pub/x` address of someone else is reached path-addressed, `/storage/<key>/pub/x`.
 */
export function target(arg: string, user: string): string {
  const uri = /^pubky:\/\/([^/]+)(\/.*)?$/.exec(arg)
  if (uri === null) return arg.startsWith('/') ? arg : `/${arg}`
  const [, key, path = '/'] = uri
  return key === user ? path : `/storage/${key}${path}`
}

async function fileBody(file: string): Promise<() => BodyInit> {
  const info = await stat(file).catch((err: Error) => {
    throw new CliError(`cannot read ${file}: ${err.message}`)
  })
  if (!info.isFile()) throw new CliError(`${file} is not a file`)
  // A Blob backed by the file: sent with its length, and readable again for a retry.
  const blob = await openAsBlob(file)
  return () => blob
}

async function stdinBody(cli: CliClient): Promise<() => BodyInit> {
  // Standard input can be read only once, so the session is checked before it is sent.
  await cli.ensureSession()
  let used = false
  return () => {
    if (used) throw new CliError('the session expired while standard input was being sent: run the command again')
    used = true
    return Readable.toWeb(process.stdin) as unknown as BodyInit
  }
}
