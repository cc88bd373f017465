import { readEnv, readFlags } from '../config/env.js'
import { UsageError } from './client-options.js'

export const migrateHelp = `hearth migrate [--database URL]

Applies the PostgreSQL schema migrations (DATABASE_URL, or --database) and exits. Every
\`hearth serve\` also applies them at start, under a lock, so this is for deployments that
migrate as a separate step.`

export async function migrate(argv: string[]): Promise<void> {
  const { raw, rest } = readFlags(argv)
  if (rest.length > 0) throw new UsageError(`unknown argument ${rest[0]}`)
  const url = raw.DATABASE_URL ?? readEnv(process.env).DATABASE_URL
  if (url === undefined) throw new UsageError('needs DATABASE_URL or --database')
  const { migrate: apply } = await import('../kv/postgres/migrate.js')
  const applied = await apply(url)
  process.stdout.write(applied.length === 0 ? 'the schema is up to date\n' : `applied migrations ${applied.join(', ')}\n`)
}
