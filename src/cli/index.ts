#!/usr/bin/env -S node --max-semi-space-size=16
// The flags above are the ones Hearth runs with (tests and benches read them from this line).
// --max-semi-space-size=16: V8 on Node 24 grows its young generation to 64 MB semi-spaces on a
// machine with gigabytes of memory, four times Node 20's, and that memory stays with the
// process: an idle stream cost 24 KB of RSS instead of 16, a thousand resuming readers grew it
// past 100 MB. Capped at Node 20's size, PUTs and replays measured no slower (README, Known limits).
import { readFile } from 'node:fs/promises'
import { UsageError } from './client-options.js'

interface Command {
  help: string
  run: (argv: string[]) => Promise<void>
}

/**
 * Every subcommand, one line each. Modules load only when their command runs, so a client
 * command does not pay for loading the server.
 */
const COMMANDS: Record<string, Command | (() => Promise<Command>)> = {
  serve: () => import('./serve.js').then((m) => ({ help: m.serveHelp, run: m.serve })),
  relay: () => import('./relay.js').then((m) => ({ help: m.relayHelp, run: m.relay })),
  keygen: () => import('./keygen.js').then((m) => ({ help: m.keygenHelp, run: m.keygen })),
  signup: () => import('./signup.js').then((m) => ({ help: m.signupHelp, run: m.signup })),
  signin: () => import('./signup.js').then((m) => ({ help: m.signinHelp, run: m.signin })),
  put: () => import('./files.js').then((m) => ({ help: m.putHelp, run: m.put })),
  get: () => import('./files.js').then((m) => ({ help: m.getHelp, run: m.get })),
  rm: () => import('./files.js').then((m) => ({ help: m.rmHelp, run: m.rm })),
  ls: () => import('./files.js').then((m) => ({ help: m.lsHelp, run: m.ls })),
  tail: () => import('./tail.js').then((m) => ({ help: m.tailHelp, run: m.tail })),
  consumer: () => import('./consumer.js').then((m) => ({ help: m.consumerHelp, run: m.consumer })),
  migrate: () => import('./migrate.js').then((m) => ({ help: m.migrateHelp, run: m.migrate })),
}

async function load(name: string): Promise<Command> {
  const entry = COMMANDS[name]!
  return typeof entry === 'function' ? entry() : entry
}

async function usage(): Promise<string> {
  const lines = await Promise.all(Object.keys(COMMANDS).map(async (name) => `  ${(await load(name)).help.split('\n')[0]}`))
  return `hearth <command> [options]

Commands:
${lines.join('\n')}

Run \`hearth <command> --help\` for a command's options.`
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await usage()) + '\n')
    return
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
    process.stdout.write(`${pkg.version}\n`)
    return
  }
  if (!Object.hasOwn(COMMANDS, name)) {
    process.stderr.write(`hearth: unknown command ${name}; run \`hearth --help\` for the list\n`)
    process.exit(2)
  }
  const command = await load(name)
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help + '\n')
    return
  }
  try {
    await command.run(rest)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`hearth ${name}: ${err.message} (see \`hearth ${name} --help\`)\n`)
      process.exit(2)
    }
    throw err
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`hearth: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`)
  process.exit(1)
})
