import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'

/** One JSON line per record on stdout, as operators' log shippers expect. */
export function createLogger(level: string): FastifyBaseLogger {
  return pino({ level, base: undefined }) as unknown as FastifyBaseLogger
}
