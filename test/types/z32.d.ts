declare module 'z32' {
  export const ALPHABET: string
  export function encode(buf: Uint8Array): string
  export function decode(s: string, out?: Uint8Array): Uint8Array
}
