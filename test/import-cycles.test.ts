import t from 'tap'
import ts from 'typescript'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * No module of src/ imports itself through others, type-only imports included: a circle means
 * a type or a rule lives on the wrong side of it.
 */
const SRC = fileURLToPath(new URL('../../src/', import.meta.url))

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return modules(path)
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : []
  })
}

/** Each module's relative imports and re-exports, as the compiler reads them. */
function importGraph(files: string[]): Map<string, string[]> {
  const known = new Set(files)
  return new Map(files.map((file) => {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, false)
    const targets = importedFiles
      .filter((f) => f.fileName.startsWith('.'))
      .map((f) => resolve(dirname(file), f.fileName.replace(/\.js$/, '.ts')))
      .filter((target) => known.has(target))
    return [file, targets]
  }))
}

/** One circle per back edge of a depth-first walk, as the path that closes it. */
function circles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = []
  const done = new Set<string>()
  const path: string[] = []
  const visit = (node: string): void => {
    path.push(node)
    for (const next of graph.get(node) ?? []) {
      const at = path.indexOf(next)
      if (at !== -1) found.push([...path.slice(at), next])
      else if (!done.has(next)) visit(next)
    }
    path.pop()
    done.add(node)
  }
  for (const node of graph.keys()) if (!done.has(node)) visit(node)
  return found
}

t.test('no import circles in src/', async (t) => {
  const files = modules(SRC)
  t.ok(files.length > 100, `${files.length} modules read`)
  const graph = importGraph(files)
  t.ok([...graph.values()].some((targets) => targets.length > 0), 'imports were found')
  const names = circles(graph).map((circle) => circle.map((f) => relative(SRC, f)).join(' → '))
  t.same(names, [])
})
