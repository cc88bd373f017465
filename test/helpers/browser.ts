import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import type { Teardown } from './server.js'

/** Debian's Chromium (`apt-get install -y chromium`); `.ci/run` installs it when missing. */
export const CHROMIUM = process.env.HEARTH_CHROMIUM || '/usr/bin/chromium'

const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync',
]

/** Why browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined
  return `no Chromium at ${CHROMIUM}: install it with \`apt-get install -y chromium\` (or set HEARTH_CHROMIUM)`
}

/** A headless Chromium with a fresh profile, closed after the test. */
export async function launchBrowser(t: Teardown): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'hearth-chromium-'))
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS })
  t.teardown(async () => {
    await context.close()
    rmSync(profile, { recursive: true, force: true })
  })
  return context
}
