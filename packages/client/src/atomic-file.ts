import { randomBytes } from 'node:crypto'
import { link, open, rename, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'

export interface AtomicWriteOptions {
  /** permissions of the new file (default 0o666, less the umask); the old file's are not kept */
  mode?: number
  /** create only: an existing file is kept, and the write fails with EEXIST */
  exclusive?: boolean
}

/**
 * Writes a whole file so that, even across a crash or power loss, it holds either what it held
 * before or all of `data`: the bytes go to a temporary file beside it, which is fsynced and
 * then renamed over the file (or, `exclusive`, linked to its name, which fails if one exists),
 * and the folder is fsynced so that the new name is durable too. On an error the temporary
 * file is removed: only the file as it was remains.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const file = await open(tmp, 'wx', options.mode ?? 0o666)
  try {
    try {
      await file.writeFile(data)
      await file.sync()
    } finally {
      await file.close()
    }
    if (options.exclusive) {
      await link(tmp, path)
      await unlink(tmp)
    } else {
      await rename(tmp, path)
    }
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await syncFolder(dirname(path))
}

/** What a platform answers when a folder cannot be opened or fsynced (Windows): renames stand there without it. */
const NO_FOLDER_SYNC = new Set(['EISDIR', 'EPERM', 'EINVAL', 'ENOTSUP'])

async function syncFolder(folder: string): Promise<void> {
  let handle
  try {
    handle = await open(folder, 'r')
    await handle.sync()
  } catch (err) {
    if (!NO_FOLDER_SYNC.has((err as NodeJS.ErrnoException).code ?? '')) throw err
  } finally {
    await handle?.close()
  }
}
