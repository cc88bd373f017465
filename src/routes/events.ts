import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Context } from '../context.js'
import { fail } from '../errors.js'
import { isPrivate } from '../feed/visibility.js'
import { parseDecimal } from '../events/id.js'

const query = z.object({
  cursor: z.string().optional(),
  limit: z.string().regex(/^\d+$/, 'expected a number').transform((s) => Math.min(Number(s), 1000)).optional().default(100),
})

/**
 * `GET /events/`: the upstream text feed. Public events after the decimal cursor, one
 * `PUT|DEL pubky://<z32><path>` line each, then `cursor: <last seq>`.
 */
export async function eventsRoute(app: FastifyInstance, ctx: Context): Promise<void> {
  app.get('/events/', async (req, reply) => {
    const q = query.parse(req.query)
    const cursor = q.cursor === undefined || q.cursor === '' ? 0n : parseDecimal(q.cursor)
    if (cursor === undefined) fail('InvalidCursor', 'cursor must be a decimal event number')
    const lines: string[] = []
    let after = Number(cursor)
    // Private events are skipped but still advance the cursor, so a reader never rescans them.
    while (lines.length < q.limit && after < ctx.events.head) {
      const page = await ctx.events.read(after, Math.max(q.limit - lines.length, 64))
      if (page.length === 0) break
      for (const ev of page) {
        after = ev.seq
        if (isPrivate(ev)) continue
        lines.push(`${ev.type} pubky://${ev.user}${ev.path}`)
        if (lines.length === q.limit) break
      }
    }
    reply.type('text/plain; charset=utf-8')
    if (lines.length === 0) return ''
    return `${lines.join("\n")}\ncursor: ${after}`
  })
}
