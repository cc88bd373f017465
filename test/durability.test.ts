import t from 'tap'
import { fstatSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { Level } from 'level'
import { newUser, startTestServer } from './helpers/server.js'
import { TEST_ENGINE } from './helpers/engine.js'

/**
 * An acknowledged write is on disk (SPEC §5): its LevelDB batch is written with `sync: true`
 * (LevelDB then fsyncs its log before the batch returns), and a blob's file and folder are
 * fsynced before the batch that references it. A SIGKILL cannot show a missing fsync, the page
 * cache survives it, so this test watches the calls themselves: the options of every batch
 * as classic-level hands them to LevelDB (`_batch` for an array of ops, a chained batch's
 * `_put`, `_del` and `_write`: abstract-level's private API for implementations), and the
 * fsyncs of file handles, in one timeline.
 */

type Step = { kind: 'batch'; sync: boolean; namespaces: string[] } | { kind: 'fsync'; of: 'file' | 'folder' }

const timeline: Step[] = []

/** The namespace of a key as the root database holds it: `!<sublevel>!<key>`. */
const namespaceOf = (key: unknown) => /^!([^!]+)!/.exec(String(key))?.[1] ?? '?'

if (TEST_ENGINE === 'leveldb') {
  let engine: object = Level.prototype
  while (!Object.hasOwn(engine, '_batch')) engine = Object.getPrototypeOf(engine) as object
  const batch = (engine as { _batch: (ops: { key: unknown }[], options: { sync?: boolean }) => Promise<void> })._batch
  Object.defineProperty(engine, '_batch', {
    configurable: true,
    value(this: unknown, ops: { key: unknown }[], options: { sync?: boolean }) {
      timeline.push({ kind: 'batch', sync: options?.sync === true, namespaces: [...new Set(ops.map((op) => namespaceOf(op.key)))].sort() })
      return batch.call(this, ops, options)
    },
  })
  // a chained batch: its keys as they are added, its options when it is written
  const scratchDir = mkdtempSync(join(tmpdir(), 'hearth-durability-'))
  const scratch = new Level(scratchDir)
  await scratch.open()
  const chained = scratch.batch()
  type Chained = { _put(key: unknown, value: unknown): void; _del(key: unknown): void; _write(options: { sync?: boolean }): Promise<void> }
  const proto = Object.getPrototypeOf(chained) as Chained
  await chained.close()
  await scratch.close()
  rmSync(scratchDir, { recursive: true, force: true })
  const keys = new WeakMap<object, Set<string>>()
  const note = (b: object, key: unknown) => {
    const set = keys.get(b) ?? new Set<string>()
    keys.set(b, set.add(namespaceOf(key)))
  }
  const { _put: put, _del: del, _write: write } = proto
  proto._put = function (this: Chained, key, value) {
    note(this, key)
    return put.call(this, key, value)
  }
  proto._del = function (this: Chained, key) {
    note(this, key)
    return del.call(this, key)
  }
  proto._write = function (this: Chained, options) {
    timeline.push({ kind: 'batch', sync: options?.sync === true, namespaces: [...(keys.get(this) ?? [])].sort() })
    return write.call(this, options)
  }
  // every FileHandle shares one prototype: spy on its sync()
  const probe = await open(new URL(import.meta.url), 'r')
  const handle = Object.getPrototypeOf(probe) as { sync: () => Promise<void> }
  await probe.close()
  const sync = handle.sync
  handle.sync = async function (this: { fd: number }) {
    timeline.push({ kind: 'fsync', of: fstatSync(this.fd).isDirectory() ? 'folder' : 'file' })
    return sync.call(this)
  }
}

t.test('every commit is a synced batch, and a blob is fsynced before the batch that names it', { skip: TEST_ENGINE !== 'leveldb' && 'LevelDB batches; PostgreSQL commits are durable by its own settings' }, async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  timeline.length = 0

  // inline files, a blob (over 64 KiB), a delete, some at once so commits group
  const small = Array.from({ length: 20 }, (_, i) => alice.put(`/pub/small/${i}.txt`, `small ${i}`))
  await Promise.all(small)
  await alice.put('/pub/big.bin', randomBytes(200 * 1024))
  await alice.delete('/pub/small/0.txt')

  const batches = timeline.filter((s) => s.kind === 'batch')
  const commits = batches.filter((s) => s.namespaces.includes('log'))
  t.ok(commits.length >= 3, `the writes were committed in ${commits.length} batches`)
  t.same(commits.filter((s) => !s.sync), [], 'every batch that appends to the log is written with sync: true')
  t.same(batches.filter((s) => !s.sync), [], 'and so is every other batch')

  // the blob: its file, then its folder, fsynced after the commit before it and before the
  // batch that stores its metadata
  const blobCommit = timeline.findIndex((s) => s.kind === 'batch' && s.namespaces.includes('blobs'))
  t.ok(blobCommit > 0, 'the blob was committed')
  const previous = timeline.map((s) => s.kind).lastIndexOf('batch', blobCommit - 1)
  t.same(timeline.slice(previous + 1, blobCommit), [{ kind: 'fsync', of: 'file' }, { kind: 'fsync', of: 'folder' }], "between the commit before it and its own: the blob's file, then its folder, fsynced")
  t.equal((await alice.get('/pub/big.bin')).length, 200 * 1024)
})
