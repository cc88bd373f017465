import { consume, newConsumerId, type ConsumedEvent, type ConsumerDefinition, type ConsumerState } from 'hearth-homeserver-client'
import { parseCursor } from 'hearth-homeserver-client/id'
import { CliClient, clientFlags, clientFlagsHelp, failed, parseCommand, UsageError } from './client-options.js'

export const consumerHelp = `hearth consumer create|ls|show|rm|tail|ack ... [--url URL] [--key FILE]

Durable consumers of the key's user: the homeserver keeps what each one processed.

  hearth consumer create [FILTER...] [--id ULID] [--from new|start|ID] [--automatic]
                         [--ack-wait MS] [--max-deliver N] [--max-pending N] [--share-progress]
      makes a consumer (no FILTER: every event the user may see) and prints its id; the same
      --id with the same settings again is no change; --share-progress: anyone may ask
      whether it processed an event, and it carries public events only
  hearth consumer ls                   one line per consumer: id, ack policy, ack floor, lag, pending, filters
  hearth consumer show ID              its state, as JSON
  hearth consumer rm ID                deletes it
  hearth consumer tail ID [--concurrency N] [--limit N]
      prints its events as they come (<id> PUT pubky://... <deliveries>) and acknowledges
      each once printed; several tails of one consumer share its events
  hearth consumer ack ID EVENT... [--nak | --term]
      acknowledges events by id (--nak: hand them back now; --term: park them as dead;
      EVENT:N names the delivery N a nak or term is about, passed over once it went out again)

${clientFlagsHelp}`

const flags = {
  ...clientFlags,
  id: { type: 'string' },
  from: { type: 'string' },
  automatic: { type: 'boolean' },
  'ack-wait': { type: 'string' },
  'max-deliver': { type: 'string' },
  'max-pending': { type: 'string' },
  'share-progress': { type: 'boolean' },
  concurrency: { type: 'string' },
  limit: { type: 'string' },
  nak: { type: 'boolean' },
  term: { type: 'boolean' },
} as const

const ACTIONS = ['create', 'ls', 'show', 'rm', 'tail', 'ack'] as const

export async function consumer(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommand(argv, flags, { min: 1, max: 1 + 64 })
  const [action, ...args] = positionals as [string, ...string[]]
  if (!(ACTIONS as readonly string[]).includes(action)) throw new UsageError(`unknown action ${action}: one of ${ACTIONS.join(', ')}`)
  const wants = (count: number) => {
    if (args.length < count) throw new UsageError(`${action}: missing ${count === 1 ? 'ID' : 'ID and EVENT'}`)
    if (action !== 'ack' && action !== 'create' && args.length > count) throw new UsageError(`unexpected argument ${args[count]}`)
  }
  const cli = await CliClient.open(values, process.env)
  const call = async (method: string, path: string, body?: unknown): Promise<Response> => {
    const json = body === undefined ? undefined : () => JSON.stringify(body)
    const res = await cli.send(method, path, json, '', body === undefined ? {} : { 'content-type': 'application/json' })
    if (!res.ok) throw await failed(res, `consumer ${action}`)
    return res
  }
  switch (action) {
    case 'create': {
      const id = values.id ?? newConsumerId()
      const state = (await (await call('PUT', `/consumers/${id}`, definition(args, values))).json()) as ConsumerState
      process.stdout.write(`${state.id}\n`)
      return
    }
    case 'ls': {
      wants(0)
      const { consumers } = (await (await call('GET', '/consumers')).json()) as { consumers: ConsumerState[] }
      for (const c of consumers) process.stdout.write(`${c.id} ${c.ack} floor ${c.ackFloor} lag ${c.lag} pending ${c.pending} ${c.filters.join(' ')}\n`)
      return
    }
    case 'show':
      wants(1)
      process.stdout.write(JSON.stringify(await (await call('GET', `/consumers/${args[0]}`)).json(), null, 2) + '\n')
      return
    case 'rm':
      wants(1)
      await (await call('DELETE', `/consumers/${args[0]}`)).body?.cancel()
      return
    case 'ack': {
      wants(2)
      if (values.nak && values.term) throw new UsageError('--nak and --term: choose one')
      const kind = values.nak ? 'nak' : values.term ? 'term' : 'ack'
      await (await call('POST', `/consumers/${args[0]}/ack`, { [kind]: args.slice(1) })).body?.cancel()
      return
    }
    case 'tail':
      wants(1)
      await tailConsumer(cli, args[0]!, count(values.concurrency, '--concurrency') ?? 1, count(values.limit, '--limit'))
  }
}

function definition(filters: string[], values: { from?: string; automatic?: boolean; 'ack-wait'?: string; 'max-deliver'?: string; 'max-pending'?: string; 'share-progress'?: boolean }): ConsumerDefinition {
  const from = values.from
  if (from !== undefined && from !== 'new' && from !== 'start' && parseCursor(from) === undefined) {
    throw new UsageError(`--from: expected new, start, an event id or a seq, got ${from}`)
  }
  const d: ConsumerDefinition = { filters: filters.length > 0 ? filters : ['*'] }
  if (from !== undefined) d.from = from === 'new' || from === 'start' ? from : { after: from }
  if (values.automatic) d.ack = 'automatic'
  const set = (key: 'ackWaitMs' | 'maxDeliver' | 'maxPending', flag: string, text: string | undefined) => {
    const n = count(text, flag)
    if (n !== undefined) d[key] = n
  }
  set('ackWaitMs', '--ack-wait', values['ack-wait'])
  set('maxDeliver', '--max-deliver', values['max-deliver'])
  set('maxPending', '--max-pending', values['max-pending'])
  if (values['share-progress']) d.shareProgress = true
  return d
}

function count(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined
  if (!/^[1-9]\d{0,8}$/.test(text)) throw new UsageError(`${flag}: expected a whole number from 1, got ${text}`)
  return Number(text)
}

/** Prints each event, then acknowledges it; Ctrl-C lets those in hand finish and sends their acks. */
async function tailConsumer(cli: CliClient, id: string, concurrency: number, limit: number | undefined): Promise<void> {
  await cli.ensureSession()
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  let printed = 0
  const worker = consume({
    owner: cli.client, consumer: id, concurrency, signal: stop.signal,
    handler: (e: ConsumedEvent) => {
      if (limit !== undefined && printed >= limit) throw new Error('over the limit: handed back')
      printed++
      process.stdout.write(`${e.id} ${e.type} ${e.uri} ${e.deliveries}\n`)
      if (printed === limit) stop.abort()
    },
    onReset: (r) => process.stderr.write(`hearth consumer tail: events after ${r.requested} and before ${r.floor} were pruned before this consumer took them\n`),
  })
  await worker.done
}
