import { z } from 'zod'

/** `?shallow` alone means true, as do `true` and `1`; `false` and `0` mean false. */
export const flag = z.union([z.literal(''), z.literal('true'), z.literal('1'), z.literal('false'), z.literal('0')]).optional()

export function bool(v: z.infer<typeof flag>): boolean {
  return v === '' || v === 'true' || v === '1'
}

export const listQuery = z.object({
  limit: z.string().regex(/^\d+$/, 'expected a number').transform((s) => Math.min(Number(s), 1000)).optional().default(100)
    .describe('listings: at most this many entries (default 100, at most 1000)'),
  cursor: z.string().min(1).optional()
    .describe('listings: start after this entry (`pubky://<key>/path`, `<key>/path`, `/path`, or a name in the folder)'),
  reverse: flag.describe('listings: newest name first'),
  shallow: flag.describe('listings: only the folder\'s own entries, subfolders ending in `/`'),
})
