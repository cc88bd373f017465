import { ChildServer } from './child-server.js'
import { freshDatabase } from './postgres.js'
import { tempDir, type Teardown } from './server.js'

/**
 * `n` `hearth serve` processes on one fresh PostgreSQL database, killed after the test. They
 * start one after another: the first creates the schema and the homeserver key. `env` may
 * differ per instance (a function of its index).
 */
export async function instances(t: Teardown, n: number, env: Record<string, string> | ((i: number) => Record<string, string>) = {}): Promise<ChildServer[]> {
  const url = await freshDatabase(t)
  const out: ChildServer[] = []
  for (let i = 0; i < n; i++) {
    const server = await ChildServer.start({ dataDir: tempDir(t), env: { DATABASE_URL: url, SIGNUP_RATE_LIMIT: '1000000', ...(typeof env === 'function' ? env(i) : env) } })
    t.teardown(() => server.kill())
    out.push(server)
  }
  return out
}
