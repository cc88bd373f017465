import type { HomeserverClient } from 'hearth-homeserver-client'

export interface StoredFile {
  size: number
  contentHash: string
}

/**
 * The files a homeserver holds under `dir` for each of `users`, as its storage API tells:
 * every page of the deep listing, then a HEAD of each file for its size and hash (ETag).
 * Keyed `<user><path>`, in key order.
 */
export async function storedFiles(users: readonly HomeserverClient[], dir = '/pub/'): Promise<Map<string, StoredFile>> {
  const out = new Map<string, StoredFile>()
  for (const u of users) {
    const prefix = `pubky://${u.user}`
    for (let cursor: string | undefined; ;) {
      const page = await u.list(dir, `limit=1000${cursor === undefined ? '' : `&cursor=${encodeURIComponent(cursor)}`}`)
      for (const url of page) {
        const path = url.slice(prefix.length)
        const res = await u.request('HEAD', path)
        if (res.status !== 200) throw new Error(`HEAD ${path}: ${res.status}`)
        out.set(u.user + path, { size: Number(res.headers.get('content-length')), contentHash: res.headers.get('etag')!.slice(1, -1) })
      }
      if (page.length < 1000) break
      cursor = page[page.length - 1]
    }
  }
  return new Map([...out].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))))
}
