import { fail, HearthError } from '../errors.js'
import { encodePublicKey, sign, verify, type Keypair } from './keys.js'
import { formatCapabilities, parseCapabilities, type Capability } from './capabilities.js'
import { PostcardReader } from './postcard.js'
import { HEADER, NAMESPACE, SIGNED_FROM, unsignedAuthToken } from 'hearth-homeserver-client/auth-token'

/**
 * The AuthToken a client posts to `/signup` and `/session`; its byte layout is described
 * in the client package's auth-token.ts, which the client signs with (async); this side signs
 * synchronously, for tests and tools.
 */
export interface AuthToken {
  signature: Uint8Array
  /** Microseconds since the epoch. */
  timestamp: bigint
  publicKey: Uint8Array
  /** The public key in z32. */
  user: string
  capabilities: Capability[]
}

export const MAX_SKEW_MS = 180_000
export { NAMESPACE }

export interface VerifyOptions {
  /** Milliseconds since the epoch. */
  now?: () => number
  skewMs?: number
}

/** Parses and checks a token: layout, version, freshness, signature. Replays are the caller's. */
export function verifyAuthToken(bytes: Uint8Array, options: VerifyOptions = {}): AuthToken {
  const token = decodeAuthToken(bytes)
  const skewMs = options.skewMs ?? MAX_SKEW_MS
  const now = BigInt(Math.floor((options.now ?? Date.now)() * 1000))
  const skew = BigInt(skewMs) * 1000n
  const seconds = skewMs / 1000
  if (token.timestamp - now > skew) {
    fail('InvalidToken', `AuthToken has a timestamp more than ${seconds} seconds in the future`)
  }
  if (now - token.timestamp > skew) {
    fail('InvalidToken', `AuthToken has a timestamp more than ${seconds} seconds in the past`)
  }
  // strict: one valid byte form per signature, so the replay guard can key on it
  if (!verify(token.signature, bytes.subarray(SIGNED_FROM), token.publicKey, { strict: true })) {
    fail('InvalidToken', 'Invalid AuthToken signature')
  }
  return token
}

/** The token's fields, checked for shape only: no signature or clock involved. */
export function decodeAuthToken(bytes: Uint8Array): AuthToken {
  if (bytes.length <= HEADER) fail('InvalidToken', 'AuthToken is too short')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (!NAMESPACE.every((b, i) => bytes[64 + i] === b)) fail('InvalidToken', 'AuthToken has the wrong namespace')
  if (bytes[74] !== 0) fail('InvalidToken', `Unknown AuthToken version ${bytes[74]}`)
  const r = new PostcardReader(bytes, 'InvalidToken', HEADER)
  const text = r.string()
  r.end()
  const publicKey = Uint8Array.from(bytes.subarray(83, HEADER))
  return {
    signature: Uint8Array.from(bytes.subarray(0, 64)),
    timestamp: view.getBigUint64(75, false),
    publicKey,
    user: encodePublicKey(publicKey),
    capabilities: capabilitiesOf(text),
  }
}

/** A fresh token for `keypair`, as the official client would make it. */
export function signAuthToken(
  keypair: Keypair,
  capabilities: readonly Capability[] | string,
  now: number = Date.now(),
): Uint8Array {
  const text = typeof capabilities === 'string' ? capabilities : formatCapabilities(capabilities)
  const token = unsignedAuthToken(keypair.publicKey, text, now)
  token.set(sign(token.subarray(SIGNED_FROM), keypair.secretKey), 0)
  return token
}

function capabilitiesOf(text: string): Capability[] {
  try {
    return parseCapabilities(text)
  } catch (err) {
    if (err instanceof HearthError) fail('InvalidToken', `AuthToken capabilities: ${err.message}`)
    throw err
  }
}
