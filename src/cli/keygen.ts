import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { writeFileAtomic } from 'hearth-homeserver-client/atomic-file'
import { keypairFromSecret } from '../auth/keys.js'
import { CliError, DEFAULT_KEY, keyFile, parseCommand, readSecret, UsageError } from './client-options.js'

export const keygenHelp = `hearth keygen [--key FILE] [--force] [--show]

Creates a new ed25519 secret key, writes it as hex to FILE (mode 0600) and prints its public
key in z-base-32: that key is your user on any homeserver. An existing key file is never
replaced without --force.

  --key FILE   where to write it, the file every other command reads
               (default: $HEARTH_KEY, else ${DEFAULT_KEY}; --out is the same)
  --force      replace an existing key file (its session file is removed too)
  --show       write nothing: print the public key of the existing key file`

export async function keygen(argv: string[]): Promise<void> {
  const flags = { key: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' }, show: { type: 'boolean' } } as const
  const { values } = parseCommand(argv, flags, { min: 0, max: 0 })
  if (values.key !== undefined && values.out !== undefined && values.key !== values.out) {
    throw new UsageError('--key and --out name the same file: give one of them')
  }
  const file = keyFile({ key: values.key ?? values.out }, process.env)
  if (values.show) {
    process.stdout.write(keypairFromSecret(Uint8Array.from(Buffer.from(await readSecret(file), 'hex'))).z32 + '\n')
    return
  }
  const secret = Uint8Array.from(randomBytes(32))
  const text = Buffer.from(secret).toString('hex') + '\n'
  try {
    // Without --force an existing file is kept, so a key is never lost by accident. Written
    // whole and fsynced, created 0600 each time, also when it replaces a key.
    await writeFileAtomic(file, text, { mode: 0o600, exclusive: !values.force })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'EEXIST') throw new CliError(`${file} already exists: pass --force to replace it, or --key another file`)
    throw new CliError(`cannot write ${file}: ${e.message}`)
  }
  // A session belongs to the key it was signed with.
  await rm(`${file}.session`, { force: true })
  process.stdout.write(keypairFromSecret(secret).z32 + '\n')
}

