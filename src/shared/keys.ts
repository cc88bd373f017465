import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { randomBytes } from 'node:crypto'
import { encodePublicKey, type Keypair } from 'hearth-homeserver-client/keys'

/*
 * ed25519 for the server, the CLI and the tests: synchronous signing and verifying. Keys are
 * named (z-base-32) by the client package's keys.ts, the one home of that rule.
 */
export { Z32_KEY, decodePublicKey, encodePublicKey, type Keypair } from 'hearth-homeserver-client/keys'

// @noble/ed25519 v3 leaves the hash to its host; give it the sync sha512 once.
ed.hashes.sha512 = sha512

export function keypairFromSecret(secretKey: Uint8Array): Keypair {
  const publicKey = ed.getPublicKey(secretKey)
  return { secretKey, publicKey, z32: encodePublicKey(publicKey) }
}

export function randomKeypair(): Keypair {
  return keypairFromSecret(Uint8Array.from(randomBytes(32)))
}

export function sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return ed.sign(message, secretKey)
}

/**
 * `strict` follows RFC 8032 (canonical encodings only) instead of ZIP-215, so a valid
 * signature has exactly one byte form and can key a replay guard.
 */
export function verify(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
  options: { strict?: boolean } = {},
): boolean {
  try {
    return ed.verify(signature, message, publicKey, { zip215: options.strict !== true })
  } catch {
    return false
  }
}
