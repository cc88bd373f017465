/** A listener that could not start, with the setting to change: the CLI says it in one line. */
export class ListenFailed extends Error {
  readonly setting: string
  /** the system's code for it (EADDRINUSE, ENOTFOUND, …) */
  readonly code: unknown
  constructor(setting: string, message: string, cause: unknown) {
    super(message, { cause })
    this.name = 'ListenFailed'
    this.setting = setting
    this.code = (cause as { code?: unknown }).code
  }
}

/** Names the setting behind a listen error: the address (HOST) or the port (`portSetting`). */
export function listenFailed(host: string, port: number, portSetting: string): (err: unknown) => never {
  return (err) => {
    const code = (err as { code?: unknown }).code
    if (code === 'EADDRINUSE') throw new ListenFailed(portSetting, `port ${port} on ${host} is taken by another process`, err)
    if (code === 'EACCES') throw new ListenFailed(portSetting, `port ${port} needs privileges this process does not have`, err)
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EADDRNOTAVAIL' || code === 'EAI_FAIL') {
      throw new ListenFailed('HOST', `cannot listen on ${host}: it is not an address of this machine, or does not resolve`, err)
    }
    throw err
  }
}
