import { checkCapabilities, CliClient, clientFlags, clientFlagsHelp, parseCommand } from './client-options.js'

export const signupHelp = `hearth signup [--token XXXX-XXXX-XXXX] [--caps CAPS] [--url URL] [--key FILE]

Creates your account on the homeserver with a signed AuthToken, and keeps the session cookie
in <key file>.session (mode 0600) for the other commands.

  --token T    signup token, for a homeserver that runs with SIGNUP_MODE=token
  --caps CAPS  capabilities of the session (default /:rw), e.g. /pub/my.app/:rw
${clientFlagsHelp}`

export const signinHelp = `hearth signin [--caps CAPS] [--url URL] [--key FILE]

Starts a new session for an existing account and keeps its cookie in <key file>.session.
Other commands do this by themselves when their session has expired.

  --caps CAPS  capabilities of the session (default /:rw)
${clientFlagsHelp}`

export async function signup(argv: string[]): Promise<void> {
  const { values } = parseCommand(argv, { ...clientFlags, token: { type: 'string' }, caps: { type: 'string' } }, { min: 0, max: 0 })
  const caps = checkCapabilities(values.caps ?? '/:rw')
  const cli = await CliClient.open(values, process.env)
  await cli.signup(caps, values.token)
  process.stdout.write(`signed up ${cli.user} on ${cli.client.url}\n`)
}

export async function signin(argv: string[]): Promise<void> {
  const { values } = parseCommand(argv, { ...clientFlags, caps: { type: 'string' } }, { min: 0, max: 0 })
  const caps = checkCapabilities(values.caps ?? '/:rw')
  const cli = await CliClient.open(values, process.env)
  await cli.signin(caps)
  process.stdout.write(`signed in ${cli.user} on ${cli.client.url}\n`)
}
