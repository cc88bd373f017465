import { asText, type KV } from '../kv/backend.js'

/**
 * Users and the bytes counted against their quotas: one pass over the users' records, which
 * carry their usage. It runs at each scrape, so its cost follows the number of users.
 */
export async function storageTotals(kv: KV): Promise<{ users: number; bytes: number }> {
  let users = 0
  let bytes = 0
  for await (const [, value] of kv.entries('users', {})) {
    users++
    bytes += (JSON.parse(asText(value)!) as { usage: number }).usage
  }
  return { users, bytes }
}
