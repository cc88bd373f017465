import type { ChildProcess } from 'node:child_process'

/**
 * Stops a server forked by a bench module: asks it over IPC (`stop`), so it closes the way
 * `hearth serve` does, and kills it if it has not exited 10 s later.
 */
export async function stopForked(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.send('stop')
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}
