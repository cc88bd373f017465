import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import z32 from 'z32'
import { randomBytes } from 'node:crypto'

/*
 * ed25519 keys and their z-base-32 names: used by the server, the client entry point and the
 * CLI alike, so this module imports nothing of either side.
 */

// @noble/ed25519 v3 leaves the hash to its host; give it the sync sha512 once.
ed.hashes.sha512 = sha512

export const Z32_KEY = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{52}$/

/** A user's public key from its 52-character z-base-32 form, or undefined. */
export function decodePublicKey(text: string): Uint8Array | undefined {
  if (!Z32_KEY.test(text)) return undefined
  const bytes = z32.decode(text)
  // 52 quintets carry 260 bits: the last 4 must be zero for a canonical 32-byte key
  if (bytes.length < 32 || bytes.subarray(32).some((b: number) => b !== 0)) return undefined
  const key = bytes.subarray(0, 32)
  if (z32.encode(key) !== text) return undefined
  return Uint8Array.from(key)
}

export function encodePublicKey(key: Uint8Array): string {
  return z32.encode(key)
}

export interface Keypair {
  secretKey: Uint8Array
  publicKey: Uint8Array
  z32: string
}

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
