import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { consume, Consumers, follow, HomeserverClient, type LogEvent, type SnapshotFile } from 'hearth-homeserver-client'
import { SharedView } from './shared-view.js'
import { View } from './view.js'

const DEFAULT_URL = 'http://127.0.0.1:6286'

const help = `node dist/examples/indexer/index.js [--url URL] [--db DIR] [--filter F]... [--once | --show]
node dist/examples/indexer/index.js --consumer ULID [--key FILE] [--url URL] [--db DIR] [--filter F]...
node dist/examples/indexer/index.js --consumer ULID --show --db DIR --db DIR...

Follows a Hearth homeserver and keeps a view of every public file (size per path, files and
bytes per user) in its own LevelDB at DIR, printing one line per event it applies. A new view
starts from a snapshot of the files, and so does one whose cursor the homeserver pruned past.
Kill it at any moment and start it again: it resumes from the cursor stored in the same batch
as the view, in the middle of the snapshot too.

  --url URL      homeserver (default: $HEARTH_URL, else ${DEFAULT_URL})
  --db DIR       the view's LevelDB folder (default ./indexer-db)
  --filter F     what to follow (default */pub/*); repeatable
  --once         catch up to the head, then exit
  --show         print the view (every file, then each user's totals) and exit

With --consumer, several processes share the work through one durable consumer of the key's
user (made from the start of the log when it does not exist): each keeps the events it was
handed in its own DIR, acknowledging each once it is on disk; --show with every DIR prints
the files of all of them as one view.
  --key FILE     the consumer owner's secret key, as \`hearth keygen\` writes it (default ./hearth.key)`

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: process.env.HEARTH_URL || DEFAULT_URL },
      db: { type: 'string', multiple: true, default: ['./indexer-db'] },
      consumer: { type: 'string' },
      key: { type: 'string', default: './hearth.key' },
      filter: { type: 'string', multiple: true, default: ['*/pub/*'] },
      once: { type: 'boolean', default: false },
      show: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return void console.log(help)
  if (values.consumer !== undefined) return shared(values.consumer, values)
  if (values.db.length > 1) throw new Error('--db: one folder, except with --consumer --show')

  const view = await View.open(values.db[0]!)
  if (values.show) return show(view)
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  process.once('SIGTERM', () => stop.abort())
  const follower = follow({
    url: values.url,
    filters: values.filter,
    cursorStore: view.cursorStore, // empty for a new view: it starts with a snapshot
    snapshot: {
      onStart: async ({ cause, reset }) => {
        console.log(`snapshot ${cause}${reset === undefined ? '' : ` (pruned ${reset.requested}..${reset.floor})`}`)
        await view.clear()
      },
      onFile: async (file) => void ((await view.applyFile(file)) && console.log(line(file))),
      onSynced: async (synced) => {
        await view.synced(synced)
        console.log(`synced ${synced.id} files ${synced.files}`)
      },
    },
    // pruned past the cursor: the view cannot be completed from the log, so it is built again
    onReset: 'snapshot',
    signal: stop.signal,
    onState: (state) => {
      console.log(`state ${state} cursor ${view.progress.cursor ?? '-'} applied ${view.progress.applied}`)
      if (values.once && state === 'live') stop.abort()
    },
  })
  try {
    // ack: 'auto' — an event counts as processed once apply() returned and the loop asks for
    // the next one. The cursor that matters is the one apply() wrote in its own batch.
    for await (const event of follower) {
      if (await view.apply(event)) console.log(line(event))
    }
  } finally {
    await view.close()
  }
  console.log(`stopped cursor ${view.progress.cursor ?? '-'} applied ${view.progress.applied}`)
}

/** One of several workers of a durable consumer, or `--show` of all their parts. */
async function shared(consumer: string, values: { url: string; db: string[]; key: string; filter: string[]; show: boolean }): Promise<void> {
  if (values.show) {
    for (const [key, file] of await SharedView.merged(values.db)) console.log(`pubky://${key}  ${file.size} B`)
    return
  }
  const owner = await HomeserverClient.fromSecret(values.url, (await readFile(values.key, 'utf8')).trim())
  await owner.signin()
  // the same id and definition from every worker: made by the first, answered to the others
  await new Consumers(owner).create(consumer, { filters: values.filter, from: 'start', ack: 'explicit' })
  const view = await SharedView.open(values.db[0]!)
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  process.once('SIGTERM', () => stop.abort())
  const worker = consume({
    owner, consumer, signal: stop.signal,
    // on disk first, then acked: a worker killed in between leaves it unacked, and it comes again
    handler: async (event) => void ((await view.apply(event)) && console.log(line(event))),
  })
  console.log(`consumer ${consumer}: working`)
  try {
    await worker.done
  } finally {
    await view.close()
  }
  console.log(`stopped after ${worker.processed} events`)
}

/** What was applied: an event, or a frame of the snapshot (a file as it is says FILE). */
function line(e: LogEvent | SnapshotFile): string {
  const type = 'snapshot' in e && e.snapshot ? 'FILE' : e.type
  return `${e.id} ${type} ${e.uri}${e.size === undefined ? '' : ` ${e.size} B`}`
}

async function show(view: View): Promise<void> {
  try {
    for (const [key, file] of await view.files()) console.log(`pubky://${key}  ${file.size} B`)
    for (const [user, row] of await view.users()) {
      console.log(`user ${user}: ${row.files} files, ${row.bytes} B, ${row.events} events`)
    }
    console.log(`snapshot ${view.progress.snapshot ?? '-'} cursor ${view.progress.cursor ?? '-'} applied ${view.progress.applied}`)
  } finally {
    await view.close()
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
