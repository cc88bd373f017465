import { fail } from '../errors.js'

/**
 * Capabilities say what a session may do on its user's files, in upstream Pubky's text form:
 * `<scope>:<actions>` entries joined by `,`, e.g. `/pub/app/:rw,/pub/x.txt:r`; root is `/:rw`.
 * A scope starts with `/` and holds no `:`; actions are letters from `r` and `w`, written in
 * that order (an empty action list is well-formed upstream and grants nothing).
 */
export type Action = 'r' | 'w'
export type Actions = '' | 'r' | 'w' | 'rw'

export interface Capability {
  readonly scope: string
  readonly actions: Actions
}

export const ROOT: Capability = Object.freeze({ scope: '/', actions: 'rw' })

export function parseCapability(text: string): Capability {
  const colon = text.indexOf(':')
  if (colon === -1 || colon !== text.lastIndexOf(':')) {
    fail('BadRequest', `Invalid capability "${text}": expected <scope>:<actions>`)
  }
  const scope = text.slice(0, colon)
  if (!scope.startsWith('/')) fail('BadRequest', `Invalid capability "${text}": scope must start with /`)
  let read = false
  let write = false
  for (const ch of text.slice(colon + 1)) {
    if (ch === 'r') read = true
    else if (ch === 'w') write = true
    else fail('BadRequest', `Invalid capability "${text}": actions are r and w`)
  }
  return { scope, actions: `${read ? 'r' : ''}${write ? 'w' : ''}` as Actions }
}

/**
 * Parses a list and normalises it as upstream does: entries for the same scope merge their
 * actions, and an entry another one already covers is dropped. `""` is the empty list.
 */
export function parseCapabilities(text: string): Capability[] {
  if (text === '') return []
  return normalize(text.split(',').map((entry) => {
    if (entry === '') fail('BadRequest', `Invalid capabilities "${text}": empty entry`)
    return parseCapability(entry)
  }))
}

export function formatCapability(cap: Capability): string {
  return `${cap.scope}:${cap.actions}`
}

export function formatCapabilities(caps: readonly Capability[]): string {
  return caps.map(formatCapability).join(',')
}

/** True when some capability grants `action` on `path` (an absolute, normalised path). */
export function covers(caps: readonly Capability[], path: string, action: Action): boolean {
  return caps.some((cap) => cap.actions.includes(action) && scopeCovers(cap.scope, path))
}

// A directory scope (trailing `/`) covers everything below it; any other scope is one file.
function scopeCovers(scope: string, path: string): boolean {
  return scope === path || (scope.endsWith('/') && path.startsWith(scope))
}

function grants(outer: Capability, inner: Capability): boolean {
  return scopeCovers(outer.scope, inner.scope) && [...inner.actions].every((a) => outer.actions.includes(a))
}

function normalize(caps: Capability[]): Capability[] {
  const merged = new Map<string, Capability>()
  for (const cap of caps) {
    const prev = merged.get(cap.scope)
    const actions = prev === undefined ? cap.actions : union(prev.actions, cap.actions)
    merged.set(cap.scope, { scope: cap.scope, actions })
  }
  const kept: Capability[] = []
  for (const cap of merged.values()) {
    if (kept.some((k) => grants(k, cap))) continue
    for (let i = kept.length - 1; i >= 0; i--) if (grants(cap, kept[i]!)) kept.splice(i, 1)
    kept.push(cap)
  }
  return kept
}

function union(a: Actions, b: Actions): Actions {
  const both = a + b
  return `${both.includes('r') ? 'r' : ''}${both.includes('w') ? 'w' : ''}` as Actions
}
