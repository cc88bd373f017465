import * as ed from '@noble/ed25519'
import { concat } from './bytes.js'
import type { Keypair } from './keys.js'
import { postcardString } from './postcard.js'

/**
 * The AuthToken layout (upstream Pubky's postcard bytes, pubky-common `auth.rs`). The client
 * signs tokens (async, `signAuthToken`); the server checks them (src/auth/token.ts) and its
 * tests sign them synchronously, both over `unsignedAuthToken`:
 *
 *   [0..64)    ed25519 signature
 *   [64..74)   `PUBKY:AUTH`
 *   [74]       version, 0
 *   [75..83)   timestamp, u64 big-endian microseconds
 *   [83..115)  public key of the user, who is also the signer in version 0
 *   [115..)    varint length + capabilities text
 *
 * The signature covers [65..], not [64..]: upstream skips the namespace's first byte, and a
 * token signed any other way does not verify there either.
 */
export const NAMESPACE = new TextEncoder().encode('PUBKY:AUTH')
export const SIGNED_FROM = 65
export const HEADER = 115

/** A token with its signature bytes still zero: sign `token.subarray(SIGNED_FROM)` into [0..64). */
export function unsignedAuthToken(publicKey: Uint8Array, capabilities: string, now: number): Uint8Array {
  const timestamp = new Uint8Array(8)
  new DataView(timestamp.buffer).setBigUint64(0, BigInt(Math.floor(now * 1000)), false)
  return concat(new Uint8Array(64), NAMESPACE, Uint8Array.of(0), timestamp, publicKey, postcardString(capabilities))
}

/** A fresh token for `keypair` with capabilities as text (`/pub/app/:rw,/pub/x.txt:r`). */
export async function signAuthToken(keypair: Keypair, capabilities: string, now: number = Date.now()): Promise<Uint8Array> {
  const token = unsignedAuthToken(keypair.publicKey, capabilities, now)
  token.set(await ed.signAsync(token.subarray(SIGNED_FROM), keypair.secretKey), 0)
  return token
}
