import t from 'tap'
import { Validator } from '@seriousme/openapi-schema-validator'
import { startTestServer, newUser } from './helpers/server.js'
import { registeredRoutes } from './helpers/routes.js'
import { infoBody } from '../src/routes/info.js'
import { okBody } from '../src/routes/health.js'
import { errorBody } from '../src/openapi/route-doc.js'

interface Operation {
  summary: string
  parameters: { name: string; in: string }[]
  responses: Record<string, { content?: Record<string, { schema?: Record<string, unknown> }> }>
}
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>> }

t.test('/openapi.json is a valid OpenAPI 3.1 document of every registered route', async (t) => {
  const server = await startTestServer(t, { ADMIN_PASSWORD: 'pw' })
  const res = await fetch(`${server.url}/openapi.json`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^application\/json/)
  const doc = (await res.json()) as Doc
  t.equal(doc.openapi, '3.1.0')

  const validator = new Validator()
  const result = await validator.validate(doc as unknown as Record<string, unknown>)
  t.ok(result.valid, `valid against the OpenAPI ${validator.version} schema: ${JSON.stringify(result.errors ?? [])}`)
  t.equal(validator.version, '3.1')

  // Fastify's route tree against the document, both ways.
  const registered = registeredRoutes(server.app)
  t.ok(registered.has('GET /info') && registered.has('PUT /pub/*') && registered.has('OPTIONS *'), 'the route tree was read')
  const documented = new Set<string>()
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) documented.add(`${method.toUpperCase()} ${path.replace(/\{[^}]+\}/g, '*')}`)
  }
  for (const route of registered) {
    const key = route === 'OPTIONS *' ? 'OPTIONS /*' : route
    t.ok(documented.has(key), `${route} is documented`)
  }
  t.equal(documented.size, registered.size, 'and the document lists nothing else')

  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const where = `${method.toUpperCase()} ${path}`
      t.not(op.summary, 'Undocumented', `${where} has a doc`)
      for (const name of [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!)) {
        t.ok(op.parameters.some((p) => p.in === 'path' && p.name === name), `${where} declares {${name}}`)
      }
      t.ok(Object.keys(op.responses).some((s) => s.startsWith('2')), `${where} has a success answer`)
    }
  }

  // Error shapes follow the route: JSON on the feeds, plain text on storage and auth.
  t.same(doc.paths['/subscribe']!.get!.responses['400']!.content, { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } })
  t.same(doc.paths['/pub/{path}']!.get!.responses['404']!.content, { 'text/plain': { schema: { type: 'string' } } })
  t.same(doc.paths['/signup']!.post!.responses['401']!.content, { 'text/plain': { schema: { type: 'string' } } })
  t.equal(doc.paths['/pub/{path}']!.head!.responses['200']!.content, undefined, 'HEAD answers have no body')

  // Parameters come from the schemas that validate the requests.
  const subscribe = doc.paths['/subscribe']!.get!
  t.same(subscribe.parameters.map((p) => `${p.in}:${p.name}`), [
    'query:filter', 'query:lastSeq', 'query:cursor', 'query:live', 'query:limit', 'query:snapshot', 'query:recent', 'header:last-event-id', 'header:cookie',
  ])
  const firehose = doc.paths['/admin/events-stream']!.get!
  t.same(firehose.parameters.map((p) => `${p.in}:${p.name}`), [
    'query:user', 'query:cursor', 'query:path', 'query:limit', 'query:live', 'query:reverse', 'header:x-admin-password',
  ])
  t.same(firehose.responses['401']!.content, { 'text/plain': { schema: { type: 'string' } } }, 'the admin firehose answers errors in plain text')
  const list = doc.paths['/pub/{path}']!.get!
  t.same(list.parameters.filter((p) => p.in === 'query').map((p) => p.name), ['limit', 'cursor', 'reverse', 'shallow', 'pubky-host'])
})

t.test('answers match the schemas the document was made from', async (t) => {
  const server = await startTestServer(t)
  await newUser(server)
  const info = await (await fetch(`${server.url}/info`)).json()
  t.ok(infoBody.safeParse(info).success, `/info fits its schema: ${JSON.stringify(info)}`)
  t.ok(okBody.safeParse(await (await fetch(`${server.url}/readyz`)).json()).success, '/readyz fits')
  const bad = await fetch(`${server.url}/subscribe?filter=nope`)
  t.equal(bad.status, 400)
  t.ok(errorBody.safeParse(await bad.json()).success, 'a JSON error fits the Error schema')
  const future = await fetch(`${server.url}/subscribe?lastSeq=999`)
  const body = await future.json()
  t.ok(errorBody.safeParse(body).success, `an error with details fits too: ${JSON.stringify(body)}`)
  const limit = await fetch(`${server.url}/subscribe?live=maybe`)
  t.equal(limit.status, 400, 'the query schema the document shows is the one that refuses bad input')
  t.match(await limit.json(), { error: 'InvalidQuery', message: /^live: / })
})
