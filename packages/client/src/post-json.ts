import type { Agent, IncomingMessage, RequestOptions } from 'node:http'

/**
 * POSTs a small JSON body and reads the answer to its end (a few hundred bytes: cancelling
 * would cost more); resolves with the status, rejects when the request fails on the way.
 *
 * In Node it goes through `node:http` (or `https`) with a keep-alive agent of its own. A
 * busy `consume()` worker sends hundreds of ack requests a second, and `fetch` cost it about
 * 210 µs of CPU each against 50 this way (measured side by side on one machine, both sides of
 * a loopback request counted); in the consumer bench the worker's CPU per event fell by a
 * fifth and the median rate rose from 52,000 to 60,500 events a second. Anywhere else (a
 * browser), `fetch`.
 */
export async function postJson(url: string, headers: Record<string, string>, body: unknown): Promise<number> {
  const text = JSON.stringify(body)
  const all = { ...headers, 'content-type': 'application/json' }
  const node = await nodeHttp()
  if (node === undefined) {
    const res = await fetch(url, { method: 'POST', headers: all, body: text })
    await res.arrayBuffer()
    return res.status
  }
  const secure = url.startsWith('https:')
  const options: RequestOptions = { method: 'POST', headers: { ...all, 'content-length': String(Buffer.byteLength(text)) }, agent: secure ? node.httpsAgent : node.httpAgent }
  return new Promise<number>((resolve, reject) => {
    const req = (secure ? node.https : node.http).request(url, options, (res: IncomingMessage) => {
      res.on('error', reject)
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.resume()
    })
    req.on('error', reject)
    req.end(text)
  })
}

interface NodeHttp {
  http: typeof import('node:http')
  https: typeof import('node:https')
  httpAgent: Agent
  httpsAgent: Agent
}

let loaded: Promise<NodeHttp | undefined> | undefined

/** Node's HTTP modules and one keep-alive agent each (idle sockets do not hold the process open), loaded once; undefined outside Node. */
function nodeHttp(): Promise<NodeHttp | undefined> {
  loaded ??= (async () => {
    if (typeof process === 'undefined' || typeof process.versions?.node !== 'string') return undefined
    const [http, https] = await Promise.all([import('node:http'), import('node:https')])
    return { http, https, httpAgent: new http.Agent({ keepAlive: true }), httpsAgent: new https.Agent({ keepAlive: true }) }
  })()
  return loaded
}
