import type { FastifyRequest } from 'fastify'
import { decodePublicKey } from '../auth/keys.js'
import { fail } from '../errors.js'
import { noteUser } from './observe.js'

/**
 * Whose storage a request addresses: header `pubky-host`, else a `Host` that is a bare z32
 * key (with or without port), else `?pubky-host=`. Path-addressed routes pass the key from
 * the path instead.
 */
export function requestUser(req: FastifyRequest): string {
  const user = findUser(req)
  noteUser(req, user)
  return user
}

function findUser(req: FastifyRequest): string {
  const header = req.headers['pubky-host']
  if (typeof header === 'string') return checked(header)
  const host = (req.headers.host ?? '').replace(/:\d+$/, '')
  if (decodePublicKey(host) !== undefined) return host
  const query = new URLSearchParams(queryString(req.url)).get('pubky-host')
  if (query !== null) return checked(query)
  fail('InvalidPublicKey', 'Invalid public key: name the user with pubky-host, Host or /storage/<key>/')
}

export function checked(key: string): string {
  if (decodePublicKey(key) === undefined) fail('InvalidPublicKey', 'Invalid public key')
  return key
}

export function queryString(url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? '' : url.slice(q + 1)
}

/**
 * The query as an object: keys named in `multi` give every value in order, the others their
 * last value, as `Object.fromEntries` would.
 */
export function queryObject(url: string, multi: readonly string[] = []): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [key, value] of new URLSearchParams(queryString(url))) {
    if (multi.includes(key)) ((out[key] ??= []) as string[]).push(value)
    else out[key] = value
  }
  return out
}

/** The raw (still percent-encoded) path of the URL, without its query. */
export function rawPath(url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}
