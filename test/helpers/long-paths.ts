import { MAX_SEGMENT_BYTES, storedPathProblem } from '../../src/paths.js'
import { seededRandom } from './random.js'

/** Characters of 1 to 4 bytes in UTF-8: z-base-32 letters, and a few beyond ASCII and the BMP. */
const WIDE = ['é', 'ü', '€', '中', '\u{E000}', '😀', '𝄞']
const LETTERS = 'ybndrfg8ejkmcpqxot1uwisza345h769'

/**
 * Paths as long as SPEC §2 allows, of random letters (which do not compress) mixed with
 * characters of several bytes: what an engine that holds keys in a size-bounded index must
 * still store and list. Seeded, so a failure is reproduced from its seed.
 */
export class PathMaker {
  readonly #rand: () => number
  readonly #wide: number

  /** `wide`: the share of characters beyond ASCII (0 makes paths of letters and digits alone) */
  constructor(seed: number, wide = 0.2) {
    this.#rand = seededRandom(seed)
    this.#wide = wide
  }

  /** A segment of exactly `bytes` bytes. */
  segment(bytes: number): string {
    let out = ''
    for (let left = bytes; left > 0; ) {
      const wide = this.#rand() < this.#wide ? WIDE[Math.floor(this.#rand() * WIDE.length)]! : ''
      const ch = wide !== '' && Buffer.byteLength(wide) <= left ? wide : LETTERS[Math.floor(this.#rand() * LETTERS.length)]!
      out += ch
      left -= Buffer.byteLength(ch)
    }
    return out
  }

  /**
   * `under` followed by `segments` segments (by default as few as the segment limit allows)
   * of about equal length, `bytes` bytes in all. Throws unless a file may be stored there.
   */
  path(under: string, bytes: number, segments?: number): string {
    const n = bytes - Buffer.byteLength(under)
    const k = segments ?? Math.ceil(n / (MAX_SEGMENT_BYTES + 1))
    let path = under
    for (let i = 0; i < k; i++) path += '/' + this.segment(Math.floor((n + i) / k) - 1)
    const problem = storedPathProblem(path)
    if (problem !== undefined || Buffer.byteLength(path) !== bytes) throw new Error(`not an allowed path of ${bytes} bytes: ${problem}`)
    return path
  }
}
