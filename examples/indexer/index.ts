import { parseArgs } from 'node:util'
import { follow, type LogEvent, type SnapshotFile } from 'hearth-homeserver-client'
import { View } from './view.js'

const DEFAULT_URL = 'http://127.0.0.1:6286'

const help = `node dist/examples/indexer/index.js [--url URL] [--db DIR] [--filter F]... [--once | --show]

Follows a Hearth homeserver and keeps a view of every public file (size per path, files and
bytes per user) in its own LevelDB at DIR, printing one line per event it applies. A new view
starts from a snapshot of the files, and so does one whose cursor the homeserver pruned past.
Kill it at any moment and start it again: it resumes from the cursor stored in the same batch
as the view, in the middle of the snapshot too.

  --url URL      homeserver (default: $HEARTH_URL, else ${DEFAULT_URL})
  --db DIR       the view's LevelDB folder (default ./indexer-db)
  --filter F     what to follow (default */pub/*); repeatable
  --once         catch up to the head, then exit
  --show         print the view (every file, then each user's totals) and exit`

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: process.env.HEARTH_URL || DEFAULT_URL },
      db: { type: 'string', default: './indexer-db' },
      filter: { type: 'string', multiple: true, default: ['*/pub/*'] },
      once: { type: 'boolean', default: false },
      show: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) return void console.log(help)

  const view = await View.open(values.db)
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
