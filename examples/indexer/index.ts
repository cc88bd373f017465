import { parseArgs } from 'node:util'
import { follow, ResetError } from '../../src/client/index.js'
import { View } from './view.js'

const DEFAULT_URL = 'http://127.0.0.1:6286'

const help = `node dist/examples/indexer/index.js [--url URL] [--db DIR] [--filter F]... [--once | --show]

Follows a Hearth homeserver and keeps a view of every public file (size per path, files and
bytes per user) in its own LevelDB at DIR, printing one line per event it applies. Kill it at
any moment and start it again: it resumes from the cursor stored in the same batch as the view.

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
    from: 'start', // only for a new view; after that the cursor in the database wins
    cursorStore: view.cursorStore,
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
      if (await view.apply(event)) console.log(`${event.id} ${event.type} ${event.uri}${event.size === undefined ? '' : ` ${event.size} B`}`)
    }
  } catch (err) {
    if (err instanceof ResetError) {
      console.error(`the homeserver pruned events ${err.requested}..${err.floor} that this view never saw; ` +
        'the view cannot be completed from the log: delete the database and index again')
      process.exitCode = 1
    } else {
      throw err
    }
  } finally {
    await view.close()
  }
  console.log(`stopped cursor ${view.progress.cursor ?? '-'} applied ${view.progress.applied}`)
}

async function show(view: View): Promise<void> {
  try {
    for (const [key, file] of await view.files()) console.log(`pubky://${key}  ${file.size} B`)
    for (const [user, row] of await view.users()) {
      console.log(`user ${user}: ${row.files} files, ${row.bytes} B, ${row.events} events`)
    }
    console.log(`cursor ${view.progress.cursor ?? '-'} applied ${view.progress.applied}`)
  } finally {
    await view.close()
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
