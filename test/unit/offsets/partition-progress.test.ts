import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PartitionProgress } from '../../../src/offsets/partition-progress.ts'

function progress() {
  return new PartitionProgress('t', 0)
}

function take(p: PartitionProgress, ...offsets: number[]) {
  for (const o of offsets) {
    assert.equal(p.admit(BigInt(o)), 'new', `offset ${o} is new`)
    p.accept(BigInt(o))
  }
}

/** A seeded generator of numbers in [0, 1), so a failing round can be replayed. */
function seeded(seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31
    return state / 2 ** 31
  }
}

test('nothing is committable before anything finished', () => {
  const p = progress()
  take(p, 0, 1, 2)
  assert.equal(p.committable(), undefined)
})

test('only the contiguous prefix of finished offsets is committable', () => {
  const p = progress()
  take(p, 10, 11, 12, 13)
  p.finish(10n)
  p.finish(12n)
  p.finish(13n)
  assert.equal(p.committable(), 11n, 'offset 11 still runs: commit up to it')
  p.finish(11n)
  assert.equal(p.committable(), 14n)
})

test('gaps in offsets (compaction, transaction markers) do not hold the commit back', () => {
  const p = progress()
  take(p, 3, 7, 20)
  for (const o of [3n, 7n, 20n]) p.finish(o)
  assert.equal(p.committable(), 21n)
})

test('a partition whose records finish one by one keeps an exact commit point over thousands of them', () => {
  const p = progress()
  for (let o = 0; o < 3_000; o++) {
    take(p, o)
    p.finish(BigInt(o))
    assert.equal(p.committable(), BigInt(o + 1), `after offset ${o}`)
    assert.equal(p.pendingCount, 0)
  }
  // Then a burst: records still running hold the commit point back.
  take(p, 3_000, 3_001, 3_002)
  p.finish(3_001n)
  assert.equal(p.committable(), 3_000n)
  assert.equal(p.pendingCount, 2)
  p.finish(3_000n)
  p.finish(3_002n)
  assert.equal(p.committable(), 3_003n)
  assert.equal(p.admit(1_500n), 'duplicate', 'a re-read of a finished record is not taken again')
})

test('a committed offset is not offered again, and records below it are duplicates', () => {
  const p = progress()
  take(p, 0, 1)
  p.finish(0n)
  p.finish(1n)
  p.committed(2n)
  assert.equal(p.committable(), undefined)
  assert.equal(p.admit(1n), 'duplicate')
})

test('a set-aside tail caps the commit point and comes back as new records after a rewind', () => {
  const p = progress()
  take(p, 0, 1, 2)
  p.dropFrom(3n)
  for (const o of [3n, 4n, 5n]) assert.equal(p.admit(o), 'new')
  p.finish(0n)
  p.finish(1n)
  p.finish(2n)
  assert.equal(p.committable(), 3n, 'never past the first set-aside record')
  assert.equal(p.rewindPoint(), 3n)
  // Re-read from 3: the earlier ones are duplicates, the set-aside ones new again.
  assert.equal(p.admit(2n), 'duplicate')
  take(p, 3)
  assert.equal(p.rewindPoint(), 4n)
  take(p, 4, 5)
  assert.equal(p.rewindPoint(), undefined, 'the tail is back')
  for (const o of [3n, 4n, 5n]) p.finish(o)
  assert.equal(p.committable(), 6n)
})

test('a record abandoned while others after it finished is read again, and the commit stops before it', () => {
  const p = progress()
  take(p, 0, 1, 2)
  p.finish(0n)
  p.abandon(1n)
  p.finish(2n)
  assert.equal(p.committable(), 1n)
  assert.equal(p.rewindPoint(), 1n)
  assert.equal(p.admit(1n), 'new', 'the abandoned record is taken again')
  assert.equal(p.admit(2n), 'duplicate', 'the finished one is not')
})

test('re-reading a set-aside tail while paused again does not move the rewind point forward', () => {
  const p = progress()
  take(p, 0)
  p.dropFrom(1n)
  for (const o of [1n, 2n, 3n, 4n]) p.admit(o)
  take(p, 1) // rewound: 1 is taken, then the partition pauses again at 2
  p.dropFrom(2n)
  for (const o of [2n, 3n, 4n]) assert.equal(p.admit(o), 'new')
  assert.equal(p.rewindPoint(), 2n)
})

test('the commit point never passes a pending offset, whatever the order of finishing, abandoning and re-reading', () => {
  // A reference model (a plain set of pending offsets) against the queue the class keeps.
  const random = seeded(7)
  // Most rounds are short; the last ones run long enough for the queue to clear settled
  // entries away (past 1,024 of them) while others are still pending.
  for (let round = 0; round < 205; round++) {
    const steps = round < 200 ? 200 : 6_000
    const p = progress()
    const pending = new Set<number>()
    const abandoned: number[] = []
    let next = 0
    let highestFinished = -1
    for (let step = 0; step < steps; step++) {
      const action = random()
      if (action < 0.45) {
        const offset = next++
        assert.equal(p.admit(BigInt(offset)), 'new')
        p.accept(BigInt(offset))
        pending.add(offset)
      } else if (action < 0.8 && pending.size > 0) {
        // Long rounds finish mostly the oldest records, as a consumer keeping up does.
        const among = steps > 200 ? Math.min(pending.size, 3) : pending.size
        const offset = [...pending][Math.floor(random() * among)]!
        p.finish(BigInt(offset))
        pending.delete(offset)
        highestFinished = Math.max(highestFinished, offset)
      } else if (action < 0.9 && pending.size > 0) {
        const offset = [...pending][Math.floor(random() * pending.size)]!
        p.abandon(BigInt(offset))
        pending.delete(offset)
        abandoned.push(offset)
      } else if (abandoned.length > 0) {
        const offset = abandoned.shift()! // the set-aside record is read again
        assert.equal(p.admit(BigInt(offset)), 'new')
        p.accept(BigInt(offset))
        pending.add(offset)
      }
      const lowestOpen = Math.min(...pending, ...abandoned, highestFinished + 1)
      const committable = p.committable()
      assert.equal(committable ?? 0n, BigInt(lowestOpen), `round ${round} step ${step}`)
      assert.equal(p.pendingCount, pending.size)
    }
  }
})

test('a progress starting at an offset treats the records below it as finished and commits that offset first', () => {
  const p = PartitionProgress.startingAt('t', 0, 7n)
  assert.equal(p.admit(3n), 'duplicate')
  assert.equal(p.admit(6n), 'duplicate')
  assert.equal(p.committable(), 7n, 'the start itself is committed, even before a record is handled')
  assert.equal(p.admit(7n), 'new')
  p.accept(7n)
  assert.equal(p.committable(), 7n)
  p.finish(7n)
  assert.equal(p.committable(), 8n)
  assert.equal(
    PartitionProgress.startingAt('t', 0, 0n).committable(),
    undefined,
    'from 0 there is nothing to commit yet'
  )
})

test('finishedAbove lists exactly the finished offsets above the commit point, whatever the order of finishing, abandoning and re-reading', () => {
  const random = seeded(7)
  for (let round = 0; round < 60; round++) {
    const steps = round < 55 ? 300 : 5_000
    const p = new PartitionProgress('t', 0)
    const pending = new Set<number>()
    const abandoned: number[] = []
    const finished = new Set<number>()
    let next = 0
    for (let step = 0; step < steps; step++) {
      const action = random()
      if (action < 0.45) {
        const offset = next++
        p.admit(BigInt(offset))
        p.accept(BigInt(offset))
        pending.add(offset)
      } else if (action < 0.8 && pending.size > 0) {
        const among = steps > 300 ? Math.min(pending.size, 3) : pending.size
        const offset = [...pending][Math.floor(random() * among)]!
        p.finish(BigInt(offset))
        pending.delete(offset)
        finished.add(offset)
      } else if (action < 0.9 && pending.size > 0) {
        const offset = [...pending][Math.floor(random() * pending.size)]!
        p.abandon(BigInt(offset))
        pending.delete(offset)
        abandoned.push(offset)
      } else if (abandoned.length > 0) {
        const offset = abandoned.shift()!
        assert.equal(p.admit(BigInt(offset)), 'new')
        p.accept(BigInt(offset))
        pending.add(offset)
      }
      const commit = p.committable() ?? 0n
      const expected = [...finished].filter((o) => BigInt(o) > commit).sort((a, b) => a - b)
      assert.deepEqual([...p.finishedAbove(commit)].map(Number), expected, `round ${round} step ${step}`)
    }
  }
})
