import { fail } from '../errors.js'
import { decodePublicKey } from '../shared/keys.js'

export {
  Z32_KEY, decodePublicKey, encodePublicKey, keypairFromSecret, randomKeypair, sign, verify, type Keypair,
} from '../shared/keys.js'

/** A user key from a request: its z32 text, or `400 Invalid public key`. */
export function parsePublicKey(text: string): string {
  if (decodePublicKey(text) === undefined) fail('InvalidPublicKey', 'Invalid public key')
  return text
}
