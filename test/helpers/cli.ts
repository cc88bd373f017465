import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { readEnv } from '../../src/config/env.js'

/** This checkout's `hearth` command line, as built into dist/. */
export const CLI = fileURLToPath(new URL('../../src/cli/index.js', import.meta.url))

/** The Node flags `hearth` runs with: those of its `#!/usr/bin/env -S node …` line. */
export const CLI_NODE_FLAGS: readonly string[] = readFileSync(CLI, 'utf8').split('\n', 1)[0]!.split(/\s+/).slice(3)

export interface CliOptions {
  /** The working folder: where key and cursor files land. */
  cwd?: string
  /** Variables over the clean environment of `userEnv`; undefined removes one. */
  env?: Record<string, string | undefined>
  /** What the command reads on stdin; without it stdin ends at once. */
  input?: Uint8Array
  /** A run still going after this long is SIGKILLed, for its assertions to report (default 60 s). */
  timeoutMs?: number
}

export interface CliRun {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** stdout as bytes, for commands that print files */
  bytes: Buffer
}

/** A command under way: what it has printed so far, and how it ends. */
export interface RunningCli {
  child: ChildProcessWithoutNullStreams
  stdout(): string
  stderr(): string
  done: Promise<CliRun>
}

/**
 * The test's environment as a user's shell would have it: no Hearth setting (PORT,
 * DATA_DIR, …), no HEARTH_URL or HEARTH_KEY, and none of tap's NODE_OPTIONS preloads.
 */
export function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: undefined, HEARTH_URL: undefined, HEARTH_KEY: undefined }
  for (const setting of Object.keys(readEnv(process.env))) delete env[setting]
  return env
}

/** Starts `hearth <args>` as a user would; for a command that runs until it is stopped. */
export function startCli(args: string[], opts: CliOptions = {}): RunningCli {
  return startScript(CLI, args, opts)
}

/** Runs `hearth <args>` to its end. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliRun> {
  return startScript(CLI, args, opts).done
}

/** Starts another script under Node (the example indexer, a README snippet), as `startCli` does hearth. */
export function startScript(script: string, args: string[], opts: CliOptions = {}): RunningCli {
  const child = spawn(process.execPath, [...(script === CLI ? CLI_NODE_FLAGS : []), script, ...args], { cwd: opts.cwd, env: { ...userEnv(), ...opts.env }, stdio: 'pipe' })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject)
    // 'close', not 'exit': by then every byte the command wrote has been read
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const bytes = Buffer.concat(out)
      resolve({ code, signal, stdout: bytes.toString(), stderr: Buffer.concat(err).toString(), bytes })
    })
  })
  child.stdin.end(opts.input)
  return { child, stdout: () => Buffer.concat(out).toString(), stderr: () => Buffer.concat(err).toString(), done }
}
