import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Actors, HostileRequest, TokenRecipe } from './hostile-input.js'

/**
 * What makes a hostile run repeatable: its seed, and the corpus of every request that ever
 * failed one, replayed first in every run.
 *
 * HEARTH_FUZZ_SEED picks the seed: a number, or `random` for a new one from the clock. Unset,
 * it is FIXED_SEED, so `npm test` and CI run the same requests every time.
 */
export const FIXED_SEED = 20261129

export function fuzzSeed(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.HEARTH_FUZZ_SEED
  if (raw === undefined || raw === '') return FIXED_SEED
  if (raw === 'random') return Date.now() % 1_000_000
  const seed = Number(raw)
  if (!Number.isSafeInteger(seed)) throw new Error(`HEARTH_FUZZ_SEED must be an integer or "random", not ${JSON.stringify(raw)}`)
  return seed
}

/** The corpus lives in the source tree (the tests run from dist/test/helpers/). */
export const CORPUS_FILE = fileURLToPath(new URL('../../../test/fixtures/hostile-corpus.json', import.meta.url))

/**
 * One request as stored: the actors' names, secrets and password replaced by `{alice.user}`,
 * `{carol.secret}`, `{adminPassword}` and so on, since every run signs up new users; a raw
 * body as base64.
 */
export interface CorpusEntry {
  /** what the request broke when it was found, in words */
  why: string
  transport: HostileRequest['transport']
  method: string
  target: string
  headers: [string, string][]
  body?: TokenRecipe | { base64: string }
  expect?: number[]
}

type Names = [placeholder: string, value: string][]

function names(a: Actors): Names {
  const out: Names = [['{adminPassword}', a.adminPassword]]
  for (const who of ['alice', 'bob', 'carol', 'dave', 'erin'] as const) out.push([`{${who}.user}`, a[who].user], [`{${who}.secret}`, a[who].secret])
  // longest value first, so no value is replaced inside a longer one
  return out.filter(([, v]) => v !== '').sort((x, y) => y[1].length - x[1].length)
}

const swap = (text: string, pairs: Names, from: 0 | 1) => pairs.reduce((s, p) => s.split(p[from]).join(p[1 - from]!), text)

export function toEntry(req: HostileRequest, a: Actors, why: string): CorpusEntry {
  const n = names(a)
  const body = req.body === undefined ? undefined : req.body instanceof Uint8Array ? { base64: Buffer.from(req.body).toString('base64') } : req.body
  return {
    why, transport: req.transport, method: req.method, target: swap(req.target, n, 1),
    headers: req.headers.map(([k, v]) => [k, swap(v, n, 1)]),
    ...(body === undefined ? {} : { body }), ...(req.expect === undefined ? {} : { expect: req.expect }),
  }
}

export function fromEntry(e: CorpusEntry, a: Actors): HostileRequest {
  const n = names(a)
  const body = e.body === undefined ? undefined : 'base64' in e.body ? new Uint8Array(Buffer.from(e.body.base64, 'base64')) : e.body
  return {
    transport: e.transport, method: e.method, target: swap(e.target, n, 0),
    headers: e.headers.map(([k, v]) => [k, swap(v, n, 0)]),
    ...(body === undefined ? {} : { body }), ...(e.expect === undefined ? {} : { expect: e.expect }),
  }
}

export function readCorpus(file = CORPUS_FILE): CorpusEntry[] {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as CorpusEntry[]) : []
}

/** Adds entries not yet in the corpus; returns how many were new. */
export function addToCorpus(entries: CorpusEntry[], file = CORPUS_FILE): number {
  const corpus = readCorpus(file)
  const key = (e: CorpusEntry) => JSON.stringify({ ...e, why: undefined })
  const known = new Set(corpus.map(key))
  const fresh = entries.filter((e) => !known.has(key(e)) && known.add(key(e)))
  if (fresh.length > 0) writeFileSync(file, `${JSON.stringify([...corpus, ...fresh], null, 2)}\n`)
  return fresh.length
}
