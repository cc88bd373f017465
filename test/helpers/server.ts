import { mkdtempSync, rmSync } from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildConfig } from '../../src/config/config.js'
import type { RawConfig } from '../../src/config/env.js'
import { startServer, type Server } from '../../src/server.js'
import { randomKeypair } from '../../src/auth/keys.js'
import { HomeserverClient } from 'hearth-homeserver-client'
import { engineSettings } from './engine.js'

export interface Teardown {
  teardown(fn: () => unknown): void
}

export function tempDir(t: Teardown, name = 'hearth-'): string {
  const dir = mkdtempSync(join(tmpdir(), name))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * A real server on 127.0.0.1, closed after the test: a real LevelDB in a fresh temp folder,
 * or with HEARTH_TEST_ENGINE=postgres a real PostgreSQL database of its own (test/helpers/engine.ts).
 * It logs nothing unless given a logger.
 */
export async function startTestServer(t: Teardown, raw: RawConfig = {}, log?: FastifyBaseLogger): Promise<Server> {
  const dir = raw.DATA_DIR ?? tempDir(t)
  const engine = raw.DATABASE_URL === undefined ? await engineSettings(t, dir) : {}
  const config = buildConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SIGNUP_RATE_LIMIT: '1000000', ...engine, ...raw, DATA_DIR: dir })
  const server = await startServer(config, log)
  t.teardown(() => server.close())
  return server
}

/** A freshly signed-up user with a root session. */
export async function newUser(server: { url: string }, capabilities = '/:rw'): Promise<HomeserverClient> {
  const client = new HomeserverClient(server.url, randomKeypair())
  await client.signup({ capabilities })
  return client
}

/** The head of a homeserver's (or relay's) log, from its /info. */
export async function headOf(url: string): Promise<number> {
  const info = (await (await fetch(`${url}/info`)).json()) as { events: { head: string } }
  return Number(info.events.head)
}

/** The floor of a server's log, as its /info says. */
export async function floorOf(url: string): Promise<number> {
  const info = (await (await fetch(`${url}/info`)).json()) as { events: { floor: string } }
  return Number(info.events.floor)
}
