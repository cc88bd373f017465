import { join } from 'node:path'
import { decodeStored, isCurrentLayout } from '../../src/events/stored.js'
import type { HearthEvent } from '../../src/events/event.js'
import type { FileMeta } from '../../src/kv/store.js'
import { LevelKV } from '../../src/kv/level/level-map.js'
import type { BatchOp } from '../../src/kv/level/ordered-map.js'
import { migrations } from '../../src/kv/postgres/migrations.js'
import { rawPool } from './postgres.js'
import type { Teardown } from './server.js'

/**
 * Puts a stopped server's log back in the layout of before stored frames (each event its JSON),
 * and its files without the seq of their write, as an older Hearth left them: all of it, or
 * (`half`) every other event and file, which is what a rewrite cut short by a crash leaves. `countOld` tells how many stored events are still in it.
 */

/** the plain event, with the keys in the order the writer made them */
const plain = (ev: HearthEvent): string => JSON.stringify({ ...ev })

export async function downgradeLevel(dataDir: string, half = false): Promise<number> {
  const kv = new LevelKV(join(dataDir, 'db'))
  await kv.open()
  try {
    const ops: BatchOp[] = [{ type: 'del', ns: 'meta', key: 'events' }, { type: 'del', ns: 'meta', key: 'fileSeqs' }]
    for (const ns of ['log', 'ulog'] as const) {
      for await (const [key, value] of kv.entries(ns, {})) {
        const ev = decodeStored(value as string)
        if (!half || ev.seq % 2 === 1) ops.push({ type: 'put', ns, key, value: plain(ev) })
      }
    }
    // files as they were before their metadata kept the seq of their write
    let i = 0
    for await (const [key, value] of kv.entries('files', {})) {
      const { seq: _, ...meta } = JSON.parse(value as string) as FileMeta
      if (!half || i++ % 2 === 0) ops.push({ type: 'put', ns: 'files', key, value: JSON.stringify(meta) })
    }
    await kv.batch(ops, { sync: true })
    return ops.length - 1
  } finally {
    await kv.close()
  }
}

export async function countOldLevel(dataDir: string): Promise<number> {
  const kv = new LevelKV(join(dataDir, 'db'))
  await kv.open()
  try {
    let old = 0
    for (const ns of ['log', 'ulog'] as const) for await (const [, value] of kv.entries(ns, {})) if (!isCurrentLayout(value as string)) old++
    return old
  } finally {
    await kv.close()
  }
}

/** The events table as the schema of before migration 3 had it, with every row (or every other one) as JSON. */
export async function downgradePostgres(t: Teardown, url: string, half = false): Promise<number> {
  const pool = rawPool(t, url)
  const { rows } = await pool.query<{ seq: string; stored: string }>('SELECT seq, stored FROM events WHERE stored IS NOT NULL')
  const back = rows.map((r) => decodeStored(r.stored)).filter((ev) => !half || ev.seq % 2 === 1)
  await pool.query(
    `UPDATE events SET event = v.json::json, stored = NULL, path = NULL FROM unnest($1::int8[], $2::text[]) AS v(seq, json) WHERE events.seq = v.seq`,
    [back.map((e) => e.seq), back.map(plain)],
  )
  if (half) await pool.query('UPDATE files SET seq = NULL WHERE length(key) % 2 = 0')
  else {
    const version = (name: string) => migrations.find((m) => m.name === name)!.version
    await pool.query(`ALTER TABLE events DROP CONSTRAINT events_stored_or_json, DROP COLUMN stored, DROP COLUMN path, ALTER COLUMN event SET NOT NULL`)
    await pool.query('ALTER TABLE files DROP COLUMN seq')
    await pool.query('DELETE FROM schema_migrations WHERE version = ANY($1::int[])', [[version('events stored as the feed sends them'), version("the seq of each file's write")]])
  }
  return back.length
}

export async function countOldPostgres(t: Teardown, url: string): Promise<number> {
  // before migration 3 there is no column for the current layout: every row is old
  const { rows } = await rawPool(t, url).query<{ n: string }>("SELECT count(*) AS n FROM events WHERE (to_jsonb(events) ->> 'stored') IS NULL")
  return Number(rows[0]!.n)
}
