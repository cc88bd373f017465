import t, { type Test } from 'tap'
import { LevelStore } from '../src/kv/level/store.js'
import type { ConsumerRecord, Store } from '../src/kv/store.js'
import { ConsumerUpdates } from '../src/consumers/updates.js'
import { NO_CONSUMER_OBSERVER } from '../src/consumers/observer.js'
import { ALICE } from './helpers/store-cases/common.js'
import { ID1, consumerRecord } from './helpers/store-cases/consumers.js'
import { tempDir } from './helpers/server.js'

/**
 * A real store whose consumer changes can be held at the door: `hold()` makes the next change
 * wait until `let go` resolves it, or fails it, as a disk would.
 */
async function heldStore(t: Test): Promise<{ store: Store; hold(): { reached: Promise<void>; go(): void; fail(err: Error): void } }> {
  const { store } = await LevelStore.open(tempDir(t, 'hearth-updates-'))
  t.teardown(() => store.close())
  await store.createUser(ALICE, 1)
  await store.createConsumer(consumerRecord(ALICE, ID1), 10)
  const update = store.updateConsumer.bind(store)
  let held: { reach(): void; gate: Promise<void> } | undefined
  store.updateConsumer = async (owner, id, change) => {
    const h = held
    held = undefined
    if (h !== undefined) {
      h.reach()
      await h.gate
    }
    return update(owner, id, change)
  }
  return {
    store,
    hold() {
      let reach!: () => void
      let go!: () => void
      let fail!: (err: Error) => void
      const reached = new Promise<void>((resolve) => (reach = resolve))
      const gate = new Promise<void>((resolve, reject) => ((go = resolve), (fail = reject)))
      gate.catch(() => {})
      held = { reach, gate }
      return { reached, go, fail }
    },
  }
}

const cursorTo = (cursor: number) => (r: ConsumerRecord) => ({ record: { ...r, cursor }, result: cursor })

t.test('whenIdle: at once with nothing on its way; else once the queue ends, whether its groups land or fail', async (t) => {
  const { store, hold } = await heldStore(t)
  const updates = new ConsumerUpdates(store, NO_CONSUMER_OBSERVER, () => {}, () => undefined)
  t.equal(updates.busy(ALICE, ID1), false, 'nothing on its way')
  await new Promise<void>((resolve) => updates.whenIdle(ALICE, ID1, resolve))
  t.pass('called with nothing on its way')

  const first = hold()
  const landed = updates.apply(ALICE, ID1, cursorTo(1))
  await first.reached
  t.equal(updates.busy(ALICE, ID1), true, 'a change being stored')
  const calls: string[] = []
  updates.whenIdle(ALICE, ID1, () => calls.push('idle'))
  // a second group waits its turn behind the first
  const second = updates.apply(ALICE, ID1, cursorTo(2)).then(() => calls.push('second stored'))
  const secondHeld = hold()
  first.go()
  t.equal((await landed)!.result, 1)
  await secondHeld.reached
  t.same(calls, [], 'not idle while the next group is on its way')
  secondHeld.fail(new Error('the disk is gone'))
  await t.rejects(second, /the disk is gone/, 'the second group fails')
  t.same(calls, ['idle'], 'and the queue ends all the same: idle is told')
  t.equal(updates.busy(ALICE, ID1), false)
  t.equal((await store.consumer(ALICE, ID1))!.cursor, 1, 'what landed stays')
})
