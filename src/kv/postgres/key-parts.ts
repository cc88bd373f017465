import { createHash } from 'node:crypto'

/**
 * A file key as the `files` table stores it (migration 3 says why): its UTF-8 bytes split
 * after the first START_BYTES. The table derives those columns from `key` itself; queries
 * split their keys and bounds here to name rows by the columns the indexes hold, so
 * START_BYTES is the 2,048 of migration 3 and changes only with a migration of its own.
 */
export const START_BYTES = 2048

export interface KeyParts {
  /** the first START_BYTES bytes, or the whole key when it is shorter */
  start: Buffer
  /** the bytes after them (empty for most keys) */
  rest: Buffer
}

export function keyParts(key: string): KeyParts {
  const bytes = Buffer.from(key, 'utf8')
  return { start: bytes.subarray(0, START_BYTES), rest: bytes.subarray(START_BYTES) }
}

/** What names a key's row in files_pkey: its start, and the sha256 of its rest (empty when the rest is). */
export function keyIdentity(key: string): { start: Buffer; restHash: Buffer } {
  const { start, rest } = keyParts(key)
  return { start, restHash: rest.length === 0 ? NONE : createHash('sha256').update(rest).digest() }
}

const NONE = Buffer.alloc(0)

/**
 * Whether other keys may begin with this start: only a full one can be shared. A shorter
 * start is a whole key, the only one with that start.
 */
export function isFull(start: Buffer): boolean {
  return start.length === START_BYTES
}

/** The condition that selects the rows with a full start, as files_rest's predicate says it. */
export const FULL_START = `octet_length(key_start) = ${START_BYTES}`
