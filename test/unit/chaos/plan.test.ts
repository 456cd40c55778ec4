/** The chaos run's messages: keys and per-key sequence from the index, failures planted by the seed alone. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { plannedMessage, plantedPermanent } from '../../../chaos/plan.ts'

const plan = { messages: 100_000, keys: 2_000, transient: 0.05, permanent: 0.001, seed: 1 }

test('each message’s key, sequence and fate follow from its index and the seed, so a run can be judged from values alone', () => {
  assert.deepEqual(plannedMessage(4_001, plan), { ...plannedMessage(4_001, plan) })
  assert.equal(plannedMessage(4_001, plan).key, 'key-1')
  assert.equal(plannedMessage(4_001, plan).seq, 2)
  const other = { ...plan, seed: 2 }
  const differ = Array.from({ length: 1_000 }, (_, i) => i).filter(
    (i) => plannedMessage(i, plan).fail !== plannedMessage(i, other).fail
  )
  assert.ok(differ.length > 0, 'another seed plants other failures')
})

test('the planted shares are close to the asked ones: 5% transient (one or two failed attempts), 0.1% permanent', () => {
  let transient = 0
  for (let i = 0; i < plan.messages; i++) {
    const m = plannedMessage(i, plan)
    if (m.fail > 0) {
      transient++
      assert.ok(m.fail === 1 || m.fail === 2)
      assert.equal(m.permanent, false)
    }
  }
  assert.ok(Math.abs(transient - 5_000) < 300, `${transient} transient`)
  const permanent = plantedPermanent(plan).size
  assert.ok(permanent > 70 && permanent < 130, `${permanent} permanent`)
})
