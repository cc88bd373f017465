import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { idOf, seqOfId } from 'hearth-homeserver-client/id'
import { testnetBanner } from '../src/cli/serve.js'
import { newUser, startTestServer, tempDir } from './helpers/server.js'
import { AckedWrites } from './helpers/acked-writes.js'
import { startScript } from './helpers/cli.js'
import { until } from './helpers/until.js'

/** The README's examples are what the code does: its frames, its snippets, the testnet banner. */

const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8')

/** The first fenced block of `lang` after `heading`. */
function block(heading: string, lang: string): string {
  const at = README.indexOf(heading)
  if (at === -1) throw new Error(`the README has no ${heading}`)
  const open = README.indexOf('```' + lang + '\n', at)
  const start = open + lang.length + 4
  return README.slice(start, README.indexOf('\n```', start) + 1)
}

t.test('every example frame carries the id of its seq', async (t) => {
  const frames = [...README.matchAll(/^id: (\S+)\nevent: (?:PUT|DEL)\ndata: (\{.*\})$/gm)]
  t.ok(frames.length > 0, 'the README shows /subscribe frames')
  for (const [, id, data] of frames) {
    const body = JSON.parse(data!) as { id: string; seq: string }
    t.equal(body.id, id, 'the data carries the frame\'s id')
    t.equal(seqOfId(id!), BigInt(body.seq), `${id} is the id of seq ${body.seq}`)
  }
  const pairs = [...README.matchAll(/seq (\d+) → `([0-9A-Z]{13})`/g)]
  t.ok(pairs.length > 0, 'the README gives ids of seqs')
  for (const [, seq, id] of pairs) t.equal(idOf(BigInt(seq!)), id, `seq ${seq} → ${id}`)
})

t.test('the testnet banner prints the README\'s client example, filled in', async (t) => {
  const key = 'o1gg96ewuojmopcjbz8895478wdtxtzzber7aezq6ror5a91j7dy'
  const relay = 'http://127.0.0.1:40404'
  const example = block('## Using the official Pubky client', 'js')
  t.match(example, '<public key printed by hearth serve>')
  const filled = example.replace('<public key printed by hearth serve>', key).replace('http://127.0.0.1:15411', relay)
  t.ok(testnetBanner(key, relay).includes(`\n${filled}`), `the banner holds:\n${filled}`)
})

t.test('the follower snippet runs as it is, with only the package installed', async (t) => {
  const server = await startTestServer(t)
  const alice = await newUser(server)
  const acked = new AckedWrites()
  await acked.put(alice, '/pub/pubky.app/posts/1', 'first')
  await acked.put(alice, '/pub/elsewhere.txt', 'not a post')
  await acked.put(alice, '/pub/pubky.app/posts/2', 'second!')
  const snippet = block('## Following the log from code', 'js')
  const specifier = /from '(hearth-homeserver-client)'/.exec(snippet)?.[1]
  t.ok(specifier, 'it imports the client package')
  // The client package, here in the checkout.
  const client = import.meta.resolve('hearth-homeserver-client')
  const dir = tempDir(t)
  writeFileSync(join(dir, 'follow.mjs'), snippet.replace(`'${specifier}'`, `'${client}'`))
  const follower = startScript('follow.mjs', [], { cwd: dir, env: { HEARTH_URL: server.url } })
  // stopped, and gone, before its folder is removed (teardowns run last first): a follower still
  // writing its cursor file made the removal fail, and the failed teardown left the server running
  t.teardown(async () => {
    follower.child.kill()
    await follower.done
  })
  await until(() => {
    if (follower.child.exitCode !== null) throw new Error(`the snippet exited: ${follower.stdout()}${follower.stderr()}`)
    return follower.stdout().split('\n').length > 2
  }, 'two lines from the snippet', 30_000, () => follower.stdout() + follower.stderr())
  const out = follower.stdout()
  const events = acked.events.filter((e) => e.path.includes('/posts/'))
  t.same(out.trimEnd().split('\n'), events.map((e) => `${idOf(e.seq)} PUT pubky://${alice.user}${e.path} ${e.size}`))
  t.ok(existsSync(join(dir, 'posts.cursor')), 'the cursor is kept where the snippet says')
})
