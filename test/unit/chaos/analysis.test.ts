/**
 * The chaos run's judge on timelines written by hand: what counts as lost, reordered,
 * re-handled within the uncommitted window, re-handled although committed, and what the
 * dead-letter topic must hold. Messages `i` are on partition 0 at offset `i`, two keys.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { analyse, type DeadLetterCopy, type WorkerEvent, type WorkerLog } from '../../../chaos/analysis.ts'
import type { PlanOptions } from '../../../chaos/plan.ts'
import { encodeFinished } from '../../../src/offsets/finished-metadata.ts'

const plan: PlanOptions = { messages: 6, keys: 2, transient: 0, permanent: 0, seed: 1 }
const assigned = (t: number): WorkerEvent => ({ e: 'a', ps: [0], t })
const handled = (i: number, t: number): WorkerEvent => ({ e: 'h', i, p: 0, o: String(i), t })
const commit = (offset: number, t: number, finished: number[] = []): WorkerEvent => ({
  e: 'c',
  cs: [{ p: 0, o: String(offset), m: encodeFinished(BigInt(offset), finished.map(BigInt)) }],
  t
})

/** A first owner that finishes 0, 1 and 3 (2 waits in a retry), commits 2 with 3 above it, finishes 2 and is killed. */
const killedOwner: WorkerLog = {
  name: 'a',
  ended: 'killed',
  events: [
    assigned(1),
    handled(0, 2),
    handled(1, 3),
    handled(3, 4),
    commit(2, 5, [3]),
    handled(2, 6),
    { e: 's', b: 2, t: 6.5 }
  ]
}

function judge(second: WorkerEvent[], deadLetters: DeadLetterCopy[] = [], planted = new Set<number>()) {
  return analyse({
    plan,
    partitions: 1,
    workers: [killedOwner, { name: 'b', ended: 'stopped', events: [assigned(10), ...second] }],
    deadLetters,
    finalCommits: [{ partition: 0, committed: 6n, end: 6n }],
    planted
  })
}

test('a message finished after the last commit and handled again by the next owner is within the uncommitted window', () => {
  const report = judge([handled(2, 11), handled(4, 12), handled(5, 13), commit(6, 14)])
  assert.deepEqual(report.lost, [])
  assert.equal(report.reorders, 0)
  assert.equal(report.rehandled, 1, 'message 2 only: 3 was in the commit’s metadata')
  assert.equal(report.uncommittedWindow, 1)
  assert.deepEqual(report.byCause.kill, { handovers: 1, window: 1, rehandled: 1 })
  assert.equal(report.rehandledDespiteCommit, 0)
  assert.equal(report.bufferedAtHandovers, 2, 'what the killed worker held when it died')
  assert.equal(report.committedAtEnd, 1)
  assert.deepEqual(report.windows, [{ partition: 0, largest: 1, span: 1 }])
})

test('handling again a message the commit covered is counted as a defect, whether below the offset or in the metadata', () => {
  const report = judge([handled(1, 11), handled(3, 12), handled(2, 13), handled(4, 14), handled(5, 15)])
  assert.equal(report.rehandled, 3)
  assert.equal(report.rehandledDespiteCommit, 2, 'offset 1 is below the commit, offset 3 in its metadata')
})

test('a message never handled and not dead-lettered is lost; a later message of its key handled first is a reorder', () => {
  // Message 5 (key 1, third) is never handled; message 4 (key 0, third) comes before 2 (key 0, second) ever did.
  const report = analyse({
    plan,
    partitions: 1,
    workers: [
      {
        name: 'a',
        ended: 'stopped',
        events: [assigned(1), handled(0, 2), handled(1, 3), handled(4, 4), handled(2, 5), handled(3, 6)]
      }
    ],
    deadLetters: [],
    finalCommits: [{ partition: 0, committed: 5n, end: 6n }],
    planted: new Set()
  })
  assert.deepEqual(report.lost, [5])
  assert.equal(report.reorders, 1)
  assert.equal(report.committedAtEnd, 0, 'the commit is short of the log end')
})

test('the DLQ must hold exactly the planted failures: copies of one failure are duplicates, not new failures', () => {
  const copy = (i: number, id = `g/t/0/${i}`): DeadLetterCopy => ({ id, i })
  const planted = new Set([4, 5])
  const report = judge(
    [handled(2, 11), { e: 'd', i: 4, p: 0, o: '4', t: 12 }, { e: 'd', i: 5, p: 0, o: '5', t: 13 }],
    [copy(4), copy(4), copy(5)],
    planted
  )
  assert.deepEqual(report.lost, [])
  assert.deepEqual(report.dlq.missing, [])
  assert.deepEqual(report.dlq.unexpected, [])
  assert.equal(report.dlq.duplicateCopies, 1)
  assert.equal(report.dlq.distinct, 2)

  const wrong = judge(
    [handled(2, 11), handled(4, 12), handled(5, 13)],
    [copy(1), copy(5), copy(5, 'other/t/0/5')],
    planted
  )
  assert.deepEqual(wrong.dlq.missing, [4])
  assert.deepEqual(wrong.dlq.unexpected, [1])
  assert.equal(wrong.dlq.splitIdentities, 1, 'one message dead-lettered under two identities')
})

test('a commit lower than the one before it on the same partition is a regression', () => {
  const report = judge([handled(2, 11), commit(3, 12), handled(4, 13), handled(5, 14), commit(6, 15)])
  assert.equal(report.commitRegressions, 0, '2, then the next owner’s 3, then 6')
  const regressed = judge([handled(2, 11), commit(6, 12), handled(4, 13), handled(5, 14), commit(4, 15)])
  assert.equal(regressed.commitRegressions, 1)
})

test('a lost membership ends the ownership: the next owner handling again is a handover, and a handler call after the loss is a zombie’s', () => {
  const lostOwner: WorkerLog = {
    name: 'a',
    ended: 'stopped',
    events: [
      assigned(1),
      handled(0, 2),
      handled(1, 3),
      commit(1, 4),
      { e: 'x', context: 'subscription', fatal: false, error: 'fetch failed', t: 5 },
      handled(2, 6),
      assigned(20),
      handled(5, 21)
    ]
  }
  const next: WorkerLog = {
    name: 'b',
    ended: 'killed',
    events: [assigned(10), handled(1, 11), handled(2, 12), handled(3, 13), handled(4, 14)]
  }
  const report = analyse({
    plan,
    partitions: 1,
    workers: [lostOwner, next],
    deadLetters: [],
    finalCommits: [{ partition: 0, committed: 6n, end: 6n }],
    planted: new Set()
  })
  assert.equal(report.handledUnowned, 1, 'message 2, handled after the loss and before a new assignment')
  assert.equal(report.rehandledWithinOwnership, 0)
  assert.deepEqual(
    report.byCause.lost,
    { handovers: 1, window: 2, rehandled: 2 },
    'messages 1 and 2, finished but not committed'
  )
  assert.equal(report.byCause.kill.handovers, 1, 'a again after b was killed')
})
