#!/usr/bin/env node
import { serve, serveHelp } from './serve.js'

const COMMANDS: Record<string, { help: string; run: (argv: string[]) => Promise<void> }> = {
  serve: { help: serveHelp, run: serve },
}

const usage = `hearth <command> [options]

Commands:
${Object.keys(COMMANDS).map((c) => `  ${c}`).join('\n')}

Run \`hearth <command> --help\` for a command's options.`

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage + '\n')
    return
  }
  const command = COMMANDS[name]
  if (command === undefined) {
    process.stderr.write(`hearth: unknown command ${name}\n\n${usage}\n`)
    process.exit(2)
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help + '\n')
    return
  }
  await command.run(rest)
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`hearth: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
