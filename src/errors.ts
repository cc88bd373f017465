/**
 * The one registry of error codes. Domain code throws `HearthError`s by code; the HTTP
 * boundary (src/routes/errors.ts) maps them to a status and the contract's body shape:
 * plain text on storage and auth routes (as upstream), JSON `{error, message}` elsewhere.
 */
export const ERRORS = {
  BadRequest: 400,
  InvalidPublicKey: 400,
  InvalidPath: 400,
  InvalidFilter: 400,
  InvalidCursor: 400,
  InvalidQuery: 400,
  FutureCursor: 400,
  TooManyFilters: 400,
  SnapshotUnsupported: 400,
  InvalidToken: 400,
  InvalidConsumerId: 400,
  InvalidBody: 400,
  TokenReplayed: 400,
  NoSession: 401,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  RequestTimeout: 408,
  Conflict: 409,
  ConsumerExists: 409,
  PreconditionFailed: 412,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  TooManyRequests: 429,
  TooManyUsers: 429,
  HeadersTooLarge: 431,
  InsufficientStorage: 507,
  Internal: 500,
  Unavailable: 503,
  NotReady: 503,
} as const

export type ErrorCode = keyof typeof ERRORS

export class HearthError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly details?: Record<string, unknown>

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message)
    this.name = 'HearthError'
    this.code = code
    this.status = ERRORS[code]
    this.details = details
  }
}

export function fail(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new HearthError(code, message, details)
}
