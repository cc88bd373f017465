/** What the engine needs of a logger: pino's shape, so the server's logger fits. */
export interface StoreLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export const silentLog: StoreLog = { info() {}, warn() {}, error() {} }
