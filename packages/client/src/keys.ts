import * as ed from '@noble/ed25519'
import { z32Decode, z32Encode } from './z32.js'

/*
 * ed25519 keys and their z-base-32 names, as the client needs them: in Node and in a browser,
 * so signing goes through @noble/ed25519's async calls, which hash with WebCrypto's SHA-512 and
 * need no hash package. The server's synchronous signing and verifying (src/shared/keys.ts)
 * name keys with the same two functions below.
 */

export const Z32_KEY = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{52}$/

export interface Keypair {
  secretKey: Uint8Array
  publicKey: Uint8Array
  z32: string
}

/** A user's public key from its 52-character z-base-32 form, or undefined when not canonical. */
export function decodePublicKey(text: string): Uint8Array | undefined {
  if (!Z32_KEY.test(text)) return undefined
  const key = z32Decode(text)
  // 52 quintets carry 260 bits: 256 of them are the key, and a canonical name pads with zeros
  if (key === undefined || key.length !== 32 || z32Encode(key) !== text) return undefined
  return key
}

export function encodePublicKey(key: Uint8Array): string {
  return z32Encode(key)
}

/** The keypair of a 32-byte secret key. */
export async function keypairOf(secretKey: Uint8Array): Promise<Keypair> {
  const publicKey = await ed.getPublicKeyAsync(secretKey)
  return { secretKey, publicKey, z32: encodePublicKey(publicKey) }
}

/** A 32-byte secret key from its 64 hex digits, or a TypeError. */
export function secretFromHex(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new TypeError('a secret key is 64 hex digits')
  return Uint8Array.from(hex.match(/../g)!, (pair) => parseInt(pair, 16))
}
