import t from 'tap'
import { allDone } from '../src/all-done.js'

t.test('resolves with every value, in order', async (t) => {
  t.same(await allDone([Promise.resolve(1), Promise.resolve('two')]), [1, 'two'])
})

t.test('rejects with the first failure only once the others have settled', async (t) => {
  let slowDone = false
  let finishSlow!: () => void
  const slow = new Promise<void>((resolve) => (finishSlow = resolve)).then(() => {
    slowDone = true
  })
  const settled = allDone([Promise.reject(new Error('first')), slow, Promise.reject(new Error('second'))])
  let rejected = false
  settled.catch(() => (rejected = true))
  // let every callback that can run now run: the rejection must still wait for `slow`
  await new Promise((r) => setImmediate(r))
  t.equal(rejected, false, 'not rejected while one is still running')
  finishSlow()
  await t.rejects(settled, { message: 'first' })
  t.ok(slowDone, 'the slow one had finished')
})
