import type pg from 'pg'
import type { KeyRange } from '../store.js'

/** Keys fetched per query: a long listing is read in pages, never held whole. */
const PAGE = 500

/**
 * File keys in byte order (the column is COLLATE "C"), paged: each page resumes after the
 * last key of the one before, so memory stays bounded however many keys the range holds.
 * Each page is its own statement: a listing that spans pages may see a commit between them,
 * as a LevelDB iterator without a snapshot would not; listings are paged by the client with
 * cursors anyway, which have the same property.
 */
export async function* fileKeys(pool: pg.Pool, range: KeyRange): AsyncGenerator<string> {
  let { gt, gte, lt, lte } = range
  let left = range.limit === undefined || range.limit < 0 ? Infinity : range.limit
  const order = range.reverse === true ? 'DESC' : 'ASC'
  while (left > 0) {
    const take = Math.min(PAGE, left)
    // a NULL bound leaves that side open
    const { rows } = await pool.query<{ key: string }>(
      `SELECT key FROM files
       WHERE ($1::text IS NULL OR key > $1) AND ($2::text IS NULL OR key >= $2)
         AND ($3::text IS NULL OR key < $3) AND ($4::text IS NULL OR key <= $4)
       ORDER BY key ${order} LIMIT $5`,
      [gt ?? null, gte ?? null, lt ?? null, lte ?? null, take],
    )
    for (const row of rows) yield row.key
    if (rows.length < take) return
    left -= rows.length
    const last = rows[rows.length - 1]!.key
    if (order === 'DESC') [lt, lte] = [last, undefined]
    else [gt, gte] = [last, undefined]
  }
}
