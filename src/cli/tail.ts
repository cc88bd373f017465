import { access, constants } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { once } from 'node:events'
import { formatBytes } from '../shared/size.js'
import { FileCursorStore, MemoryCursorStore } from 'hearth-homeserver-client'
import { FollowHttpError, FutureCursorError, type LogEvent, type ResetInfo } from 'hearth-homeserver-client'
import { follow, type Follower } from 'hearth-homeserver-client/follow'
import { isToken, type SnapshotHandler, type SnapshotStart } from 'hearth-homeserver-client/snapshot'
import { parseCursor } from 'hearth-homeserver-client/id'
import { CliError, DEFAULT_URL, homeserverUrl, parseCommand, UsageError } from './client-options.js'

export const tailHelp = `hearth tail [FILTER...] [--snapshot | --from start|now|ID] [--cursor-file F] [--json] [--limit N] [--url URL]

Follows the homeserver's event log, one line per event as it happens:
  <id> PUT pubky://<public key>/pub/path  12 B
A FILTER is <public key><path> or *<path>; a trailing * makes it a prefix
('*/pub/pubky.app/posts/*', '<public key>/*'). No FILTER: every public event.

  --snapshot          first every file the filters cover, as it is now, in key order:
                        <id> FILE pubky://<public key>/pub/path  12 B
                      (the id of the write that made it so), then
                        <id> SYNCED <n> files
                      then the events after it. Writes made while the files were read
                      print as PUT/DEL lines before SYNCED. A kept position below the
                      homeserver's floor takes a new snapshot.
  --from WHERE        start, now (default), or an event id or seq to resume after;
                      a position kept in --cursor-file wins
  --cursor-file F     keep the position in F, so the next run resumes after the last line printed
                      (in the middle of a snapshot too)
  --json              one JSON object per line: id, seq, type, user, path, uri, contentHash, size, ts;
                      a snapshot's file adds "snapshot":true, and SYNCED is
                      {"type":"SYNCED","id","seq","files"}
  --limit N           stop after N events (a snapshot's lines do not count)
  --url URL           homeserver (default: $HEARTH_URL, else ${DEFAULT_URL})

Ctrl-C stops after saving the position. Exit status 1 when the homeserver refuses the filters
or the cursor (a cursor past its head), 2 on a bad command line.`

const options = {
  url: { type: 'string' },
  snapshot: { type: 'boolean' },
  from: { type: 'string' },
  'cursor-file': { type: 'string' },
  json: { type: 'boolean' },
  limit: { type: 'string' },
} as const

export async function tail(argv: string[]): Promise<void> {
  const { values, positionals: filters } = parseCommand(argv, options, { min: 0, max: 64 })
  const url = homeserverUrl(values, process.env)
  if (values.snapshot && values.from !== undefined) throw new UsageError('--snapshot and --from: choose one')
  const from = values.snapshot ? undefined : values.from ?? 'now'
  if (from !== undefined && from !== 'start' && from !== 'now' && parseCursor(from) === undefined) {
    throw new UsageError(`--from: expected start, now, an event id or a seq, got ${from}`)
  }
  const limit = values.limit === undefined ? Infinity : Number(values.limit)
  if (!Number.isSafeInteger(limit) && limit !== Infinity) throw new UsageError(`--limit: not a whole number: ${values.limit}`)
  if (limit < 1) throw new UsageError('--limit: must be at least 1')
  const file = values['cursor-file']
  // checked now, and named as given: the first save would otherwise fail on its temporary file
  if (file !== undefined) await access(dirname(resolve(file)), constants.W_OK).catch(() => {
    throw new UsageError(`--cursor-file: cannot write in ${dirname(resolve(file))}`)
  })
  const store = file !== undefined ? new FileCursorStore(file) : new MemoryCursorStore()
  // A kept position wins over --from: an error about the cursor must say which one it was.
  const kept = await store.load()
  if (kept !== undefined && isToken(kept) && !values.snapshot) {
    throw new CliError(`${file} holds a position inside a snapshot: pass --snapshot to finish it, or remove ${file}`)
  }

  const stop = new AbortController()
  const onSignal = () => stop.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  // A reader that went away (`| head`) ends the tail like Ctrl-C does.
  process.stdout.on('error', onSignal)
  /** One line out, waiting while stdout is backed up (a slow pipe pushes back on the homeserver). */
  const print = async (line: string): Promise<void> => {
    progress?.clear()
    if (!process.stdout.write(line)) await Promise.race([once(process.stdout, 'drain'), once(stop.signal, 'abort')])
  }
  const snapshot: SnapshotHandler = {
    onStart: (start) => void (start.reset !== undefined && process.stderr.write(snapshotNotice(start.reset, start.cause))),
    onFile: (f) => print(values.json ? jsonLine(f) : textLine(f)),
    onSynced: (s) => print(values.json ? JSON.stringify({ type: 'SYNCED', ...s }) + '\n' : `${s.id} SYNCED ${s.files} files\n`),
  }
  const follower = follow({
    url, filters, from,
    cursorStore: store,
    ack: 'explicit',
    signal: stop.signal,
    ...(values.snapshot ? { snapshot, onReset: 'snapshot' } : { onReset: (r: ResetInfo) => void process.stderr.write(resetNotice(r)) }),
    onRetry: (r) => {
      progress?.clear()
      process.stderr.write(`hearth tail: cannot reach ${url} (${reason(r.error)}); retrying in ${(r.delayMs / 1000).toFixed(1)} s\n`)
    },
  })
  const progress = process.stderr.isTTY ? new Progress(follower) : undefined
  try {
    let count = 0
    for await (const event of follower) {
      if (stop.signal.aborted) break
      await print(values.json ? jsonLine(event) : textLine(event))
      event.ack()
      progress?.count()
      if (++count >= limit) break
    }
  } catch (err) {
    if (err instanceof FutureCursorError) {
      const head = err.head ?? 'unknown'
      if (kept !== undefined) {
        throw new CliError(`the position ${kept} kept in ${file} is past the head of ${url} (head ${head}): ` +
          `a different or restored homeserver; remove ${file} to start again`)
      }
      throw new CliError(`--from ${from} is past the head of ${url} (head ${head}): no such event yet; ` +
        `pass --from now, --from start, or a seq up to ${head}`)
    }
    if (err instanceof FollowHttpError) throw new CliError(`${url} refused: ${err.message}`)
    throw err
  } finally {
    await follower.close()
    progress?.end()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** The network's own word for a failure (ECONNREFUSED, ENOTFOUND…), else the message. */
function reason(err: Error): string {
  let cause: unknown = err
  while (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code
    cause = cause.cause
  }
  return err.message
}

/** An event, or a frame of a snapshot: a file as it is is marked `"snapshot":true`. */
function jsonLine(e: LogEvent & { snapshot?: boolean }): string {
  const { id, seq, type, user, path, uri, contentHash, size, ts } = e
  return JSON.stringify({ id, seq, type, user, path, uri, contentHash, size, ts, ...(e.snapshot === true ? { snapshot: true } : {}) }) + '\n'
}

/** An event, or a frame of a snapshot: a file as it is says FILE. */
function textLine(e: LogEvent & { snapshot?: boolean }): string {
  const type = e.snapshot === true ? 'FILE' : e.type
  return e.type === 'PUT' ? `${e.id} ${type} ${e.uri}  ${formatBytes(e.size ?? 0)}\n` : `${e.id} DEL ${e.uri}\n`
}

function resetNotice(r: ResetInfo): string {
  return `hearth tail: the homeserver pruned events after ${r.requested} and before ${r.floor}; continuing from ${r.floor}\n`
}

function snapshotNotice(r: ResetInfo, cause: SnapshotStart['cause']): string {
  const then = cause === 'restart' ? 'the snapshot starts again' : 'taking a new snapshot'
  return `hearth tail: the homeserver pruned events after ${r.requested} and before ${r.floor}; ${then}\n`
}

/** One self-overwriting status line on a terminal's stderr: rate, distance to the head, state. */
class Progress {
  readonly #follower: Follower
  readonly #timer: NodeJS.Timeout
  #events = 0
  #window = 0
  #shown = false
  #last = Date.now()

  constructor(follower: Follower) {
    this.#follower = follower
    this.#timer = setInterval(() => this.#draw(), 1000)
    this.#timer.unref()
  }

  count(): void {
    this.#events++
    this.#window++
  }

  #draw(): void {
    const now = Date.now()
    const rate = (this.#window * 1000) / Math.max(1, now - this.#last)
    ;[this.#window, this.#last] = [0, now]
    const f = this.#follower
    process.stderr.write(`\r\x1b[K${this.#events} events, ${rate.toFixed(0)}/s, ${f.lag} behind head, ${f.state}`)
    this.#shown = true
  }

  /** Before a line goes to the same terminal: the next tick draws the status again. */
  clear(): void {
    if (!this.#shown || !process.stdout.isTTY) return
    process.stderr.write('\r\x1b[K')
    this.#shown = false
  }

  end(): void {
    clearInterval(this.#timer)
    if (this.#shown) process.stderr.write('\r\x1b[K')
  }
}
