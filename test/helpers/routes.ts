import type { FastifyInstance } from 'fastify'

/**
 * Every route Fastify knows, as `METHOD url` pairs, read from its own route tree
 * (`printRoutes()`), independently of anything the server collected itself. Each line of the
 * tree is a node: its text continues its parent's, and `(GET, HEAD)` lists the methods
 * registered where a URL ends.
 */
export function registeredRoutes(app: FastifyInstance): Set<string> {
  const routes = new Set<string>()
  const stack: string[] = []
  for (const line of app.printRoutes().split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.*)$/.exec(line)
    if (m === null) continue
    const depth = m[1]!.length / 4
    const node = /^(.*?)(?: \(([A-Z, ]+)\))?$/.exec(m[2]!)!
    const text = node[1] === '(empty root node)' ? '' : node[1]!
    stack.length = depth
    stack.push(text)
    if (node[2] === undefined) continue
    for (const method of node[2].split(', ')) routes.add(`${method} ${stack.join('')}`)
  }
  return routes
}
