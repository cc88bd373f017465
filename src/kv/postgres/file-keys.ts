import type { KeyRange } from '../store.js'
import type { Sql } from './connect.js'

/** Keys fetched per query: a long listing is read in pages, never held whole. */
const PAGE = 500

/**
 * File keys in byte order (the column is COLLATE "C"), paged: each page resumes after the
 * last key of the one before, so memory stays bounded however many keys the range holds.
 * Each page is its own statement: a listing that spans pages may see a commit between them,
 * as a LevelDB iterator without a snapshot would not; listings are paged by the client with
 * cursors anyway, which have the same property.
 */
export async function* fileKeys(sql: Sql, range: KeyRange): AsyncGenerator<string> {
  let { gt, gte, lt, lte } = range
  let left = range.limit === undefined || range.limit < 0 ? Infinity : range.limit
  const reverse = range.reverse === true
  while (left > 0) {
    const take = Math.min(PAGE, left)
    const rows = await sql<{ key: string }[]>`
      SELECT key FROM files WHERE true
        ${gt !== undefined ? sql`AND key > ${gt}` : sql``}
        ${gte !== undefined ? sql`AND key >= ${gte}` : sql``}
        ${lt !== undefined ? sql`AND key < ${lt}` : sql``}
        ${lte !== undefined ? sql`AND key <= ${lte}` : sql``}
      ORDER BY key ${reverse ? sql`DESC` : sql`ASC`} LIMIT ${take}`
    for (const row of rows) yield row.key
    if (rows.length < take) return
    left -= rows.length
    const last = rows[rows.length - 1]!.key
    if (reverse) [lt, lte] = [last, undefined]
    else [gt, gte] = [last, undefined]
  }
}
