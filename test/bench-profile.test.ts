import t from 'tap'
import { CpuProfiler, placeOf, summarize, type CpuProfile } from '../bench/cpu-profile.js'
import { renderProfile } from '../bench/report.js'
import { ChildServer } from './helpers/child-server.js'
import { newUser, tempDir } from './helpers/server.js'

// The benchmarks print where a server's CPU went under their load: a profile of a real
// `hearth serve`, taken over a window of real requests, summed by where the code lives.

t.test('a window of PUTs to a real server is profiled and summed by place and function', async (t) => {
  const profiler = new CpuProfiler()
  t.teardown(() => profiler.close())
  const server = await ChildServer.start({ dataDir: tempDir(t), env: profiler.env })
  t.teardown(() => server.stop())
  const user = await newUser(server)
  const { result, profile } = await profiler.window(server.pid!, '300 PUTs', async () => {
    for (let i = 0; i < 300; i++) await user.put(`/pub/p/${i}`, `body ${i}`)
    return 'written'
  })
  t.equal(result, 'written', 'the window gives back what its work returned')
  t.equal(profile.during, '300 PUTs')
  t.ok(profile.seconds > 0, `it ran ${profile.seconds} s`)
  t.ok(profile.busy > 0 && profile.busy <= 100, `busy in ${profile.busy}% of samples`)
  const total = (rows: { share: number }[]) => rows.reduce((s, r) => s + r.share, 0)
  t.ok(Math.abs(total(profile.places) - 100) < 1, `places sum to 100% (${total(profile.places)})`)
  t.ok(Math.abs(total(profile.functions) - 100) < 1, `functions sum to 100% (${total(profile.functions)})`)
  t.ok(profile.places.some((p) => p.name.startsWith('hearth src')), 'the server\'s own code is among the places')
  t.ok(profile.places.some((p) => p.name === 'fastify'), 'and so is the framework under it')

  // a second window: the hook starts and stops again
  const again = await profiler.window(server.pid!, 'one more PUT', () => user.put('/pub/p/last', 'x'))
  t.equal(again.profile.during, 'one more PUT')

  const lines = renderProfile(profile)
  t.match(lines[0], /during 300 PUTs/)
  t.ok(lines.includes('| where | share of busy samples |') && lines.includes('| function | share of busy samples |'))
})

t.test('code is placed by where it lives', async (t) => {
  const at = (url: string, functionName = 'f') => placeOf({ functionName, url })
  t.equal(at('', '(garbage collector)'), 'garbage collection')
  t.equal(at('', '(program)'), 'V8 and native code outside any function')
  t.equal(at('', 'writev'), 'native functions (system calls, builtins)')
  t.equal(at('node:internal/stream_base_commons'), "Node's JavaScript")
  t.equal(at('wasm://wasm/e4246a32'), 'WebAssembly (blake3, from hash-wasm)')
  t.equal(at('file:///app/node_modules/fastify/lib/reply.js'), 'fastify')
  t.equal(at('file:///app/node_modules/@fastify/cors/index.js'), '@fastify/cors')
  t.equal(at('file:///app/node_modules/a/node_modules/b/x.js'), 'a', 'the outermost package: what the server depends on')
  t.equal(at('file:///app/dist/src/kv/level/store.js'), 'hearth src/kv')
  t.equal(at('file:///app/dist/src/paths.js'), 'hearth src')
  t.equal(at('file:///app/dist/bench/put.js'), 'hearth bench')
})

t.test('a native function is placed by the package that called it, whatever V8 named it', async (t) => {
  const native = (functionName: string, caller?: string) => placeOf({ functionName, url: '' }, caller === undefined ? undefined : { url: caller })
  t.equal(native('update', 'file:///app/node_modules/classic-level/chained-batch.js'), 'native code of classic-level')
  t.equal(native('writev', 'node:internal/stream_base_commons'), 'native functions (system calls, builtins)', 'called from Node: a system call')
  t.equal(native('writev'), 'native functions (system calls, builtins)', 'with no caller')
  t.equal(native('(program)', 'file:///app/node_modules/x/y.js'), 'V8 and native code outside any function')

  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0 })
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)', ''), children: [2, 4] },
      { id: 2, callFrame: frame('_put', 'file:///app/node_modules/classic-level/chained-batch.js'), children: [3] },
      { id: 3, callFrame: frame('update', '') },
      { id: 4, callFrame: frame('(idle)', '') },
    ],
    samples: [3, 3, 2, 4],
    timeDeltas: [1, 1, 1, 1],
    startTime: 0,
    endTime: 4,
  }
  const summary = summarize(profile)
  t.same(summary.places.find((p) => p.name === 'native code of classic-level'), { name: 'native code of classic-level', share: 66.7 }, 'two busy samples of three')
  t.ok(summary.functions.some((f) => f.name === '(a native call of classic-level)'), 'named by its package, not by V8\'s name for it')
  t.notOk(summary.functions.some((f) => f.name.startsWith('update')))
})
