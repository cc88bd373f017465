// What a build needs besides tsc's output: the viewer's static files beside the compiled code,
// and the CLI's executable bit (tsc writes every file 0644, which would leave a linked `hearth`
// answering "Permission denied" after `npm pack` rebuilt dist/).
import { chmodSync, cpSync, existsSync } from 'node:fs'

if (existsSync('src/viewer/static')) cpSync('src/viewer/static', 'dist/src/viewer/static', { recursive: true })
if (existsSync('dist/src/cli/index.js')) chmodSync('dist/src/cli/index.js', 0o755)
