/**
 * Advisory lock keys, as PostgreSQL's two-int4 form: one class for Hearth (the ASCII of
 * `Hrth`), one id per use. Every process agrees on them, so each names one thing to do alone.
 */
export const LOCKS = {
  class: 0x48727468,
  /** applying schema migrations */
  migrate: 1,
  /** deleting events below the floor */
  prune: 2,
} as const
