// The first step of `npm start`, `npm test` and `npm run bench`: one clear line, and a stop,
// on a Node older than the one Hearth is built and tested on (package.json `engines`), rather
// than a wall of errors from a runtime that lacks what the code uses.
import { readFileSync } from 'node:fs'

const { engines } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
const least = Number(/(\d+)/.exec(engines.node)[1])
const major = Number(process.versions.node.split('.')[0])
if (major < least) {
  process.stderr.write(
    `hearth: Node ${least} or newer is needed (this is ${process.version}); ` +
      `install Node ${least} LTS, or run \`bash scripts/node24.sh\` and put the folder it prints first on PATH\n`,
  )
  process.exit(1)
}
