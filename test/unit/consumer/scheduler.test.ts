/**
 * The scheduler alone: lanes per ordering mode, the concurrency bound, and what settling
 * an outcome does to a partition's progress. Records are handed to a `process` function
 * the test controls, so every interleaving is the test's choice.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { newPartitionState, type Outcome, type PartitionState } from '../../../src/consumer/partition.ts'
import { type Ordering, Scheduler } from '../../../src/consumer/scheduler.ts'
import type { InboundRecord } from '../../../src/transport/types.ts'

const never = new AbortController().signal

function partition(number = 0): PartitionState {
  return newPartitionState({ topic: 't', partition: number }, never, never)
}

function record(state: PartitionState, offset: number, key: string | null = null): InboundRecord {
  return {
    topic: state.tp.topic,
    partition: state.tp.partition,
    offset: BigInt(offset),
    key: key === null ? null : Buffer.from(key),
    value: null,
    headers: new Map(),
    timestamp: 0
  }
}

/** A scheduler whose records finish when the test says: `finish(offset)` settles that record. */
function controlled(ordering: Ordering, concurrency = 16) {
  const running: InboundRecord[] = []
  const started: string[] = []
  let peak = 0
  const pending = new Map<string, (outcome: Outcome) => void>()
  const released: PartitionState[] = []
  const failures: unknown[] = []
  const scheduler = new Scheduler({
    ordering,
    concurrency,
    process: (r) => {
      running.push(r)
      peak = Math.max(peak, running.length)
      started.push(`${r.partition}:${r.offset}`)
      return new Promise<Outcome>((resolve) => {
        pending.set(`${r.partition}:${r.offset}`, (outcome) => {
          running.splice(running.indexOf(r), 1)
          resolve(outcome)
        })
      })
    },
    released: (state) => void released.push(state),
    failed: (error) => void failures.push(error)
  })
  const add = (state: PartitionState, offset: number, key: string | null = null) => {
    state.progress.admit(BigInt(offset))
    state.progress.accept(BigInt(offset))
    scheduler.add(state, record(state, offset, key))
  }
  /** Settles a running record and lets the promise callbacks run. */
  const finish = async (partitionNumber: number, offset: number, outcome: Outcome = 'processed') => {
    const settle = pending.get(`${partitionNumber}:${offset}`)
    assert.ok(settle, `record ${partitionNumber}:${offset} is not running`)
    pending.delete(`${partitionNumber}:${offset}`)
    settle(outcome)
    await new Promise((resolve) => setImmediate(resolve))
  }
  return { scheduler, add, finish, started, running, released, failures, peak: () => peak }
}

test('partition ordering starts a record only after the one before it in its partition settled', async () => {
  const { add, finish, started } = controlled('partition')
  const a = partition(0)
  const b = partition(1)
  for (const offset of [0, 1, 2]) add(a, offset)
  add(b, 0)
  assert.deepEqual(started, ['0:0', '1:0'], 'one record per partition at a time, partitions in parallel')
  await finish(0, 0)
  assert.deepEqual(started, ['0:0', '1:0', '0:1'])
  await finish(0, 1)
  await finish(0, 2)
  assert.deepEqual(started, ['0:0', '1:0', '0:1', '0:2'])
})

test('key ordering runs the keys of a partition in parallel and each key in offset order', async () => {
  const { add, finish, started } = controlled('key')
  const a = partition(0)
  add(a, 0, 'x')
  add(a, 1, 'y')
  add(a, 2, 'x')
  assert.deepEqual(started, ['0:0', '0:1'], 'offset 2 waits for offset 0, its key’s previous record')
  await finish(0, 1)
  assert.deepEqual(started, ['0:0', '0:1'])
  await finish(0, 0)
  assert.deepEqual(started, ['0:0', '0:1', '0:2'])
})

test('unordered runs every record at once up to the concurrency bound, and never more', async () => {
  const { add, finish, started, peak } = controlled('unordered', 3)
  const a = partition(0)
  for (let offset = 0; offset < 6; offset++) add(a, offset)
  assert.deepEqual(started, ['0:0', '0:1', '0:2'])
  await finish(0, 1)
  assert.deepEqual(started, ['0:0', '0:1', '0:2', '0:3'], 'a free slot goes to the next ready lane')
  for (const offset of [0, 2, 3, 4, 5]) await finish(0, offset)
  assert.equal(peak(), 3)
})

test('lanes waiting for a slot take turns in the order they became ready', async () => {
  const { add, finish, started } = controlled('partition', 1)
  const [a, b, c] = [partition(0), partition(1), partition(2)]
  add(a, 0)
  add(a, 1)
  add(b, 0)
  add(c, 0)
  await finish(0, 0)
  assert.deepEqual(
    started,
    ['0:0', '1:0'],
    'partition 1 was ready before partition 0 had its next record run'
  )
  await finish(1, 0)
  assert.deepEqual(started, ['0:0', '1:0', '2:0'])
  await finish(2, 0)
  assert.deepEqual(started, ['0:0', '1:0', '2:0', '0:1'])
})

test('settled records move the commit point; abandoned ones hold it', async () => {
  const { add, finish } = controlled('unordered')
  const a = partition(0)
  for (const offset of [0, 1, 2]) add(a, offset)
  assert.equal(a.buffered, 3)
  assert.equal(a.inFlight, 3)
  await finish(0, 0, 'processed')
  await finish(0, 2, 'dead-lettered')
  assert.equal(a.progress.committable(), 1n, 'offset 1 is still running')
  await finish(0, 1, 'abandoned')
  assert.equal(a.progress.committable(), 1n, 'an abandoned record is never committed past')
  assert.equal(a.progress.rewindPoint(), 1n, 'and it is to be read again')
  assert.equal(a.buffered, 0)
})

test('synchronous outcomes run back to back in one lane and count as finished', () => {
  const seen: bigint[] = []
  const scheduler = new Scheduler({
    ordering: 'partition',
    concurrency: 1,
    process: (r) => {
      seen.push(r.offset)
      return 'processed'
    },
    released: () => {},
    failed: () => {}
  })
  const a = partition(0)
  for (let offset = 0; offset < 100; offset++) {
    a.progress.admit(BigInt(offset))
    a.progress.accept(BigInt(offset))
    scheduler.add(a, record(a, offset))
  }
  assert.equal(seen.length, 100)
  assert.equal(scheduler.buffered, 0)
  assert.equal(scheduler.active, 0)
  assert.equal(a.progress.committable(), 100n)
})

test('discard forgets queued records (to be read again) and lets the running one finish', async () => {
  const { scheduler, add, finish, started } = controlled('partition')
  const a = partition(0)
  for (const offset of [0, 1, 2]) add(a, offset)
  scheduler.discard(a)
  assert.equal(a.buffered, 1, 'only the running record is held')
  await finish(0, 0)
  assert.deepEqual(started, ['0:0'])
  assert.equal(a.progress.committable(), 1n)
  assert.equal(a.progress.rewindPoint(), 1n)
})

test('setAsideFrom keeps the lowest offsets over all key lanes and cuts the rest', async () => {
  const { scheduler, add, started } = controlled('key', 1)
  const a = partition(0)
  add(a, 0, 'x') // running
  for (const [offset, key] of [
    [1, 'y'],
    [2, 'x'],
    [3, 'z'],
    [4, 'y'],
    [5, 'x']
  ] as const)
    add(a, offset, key)
  assert.deepEqual(started, ['0:0'])
  const cut = scheduler.setAsideFrom(a, 2)
  assert.equal(cut, 3n, 'offsets 1 and 2 stay queued, 3 and later are set aside')
  assert.equal(a.buffered, 3)
  assert.equal(scheduler.setAsideFrom(a, 2), undefined, 'nothing more to cut')
  assert.equal(a.progress.rewindPoint(), 3n)
})

test('waitIdle resolves once the running records settle, or false at its timeout', async () => {
  const { scheduler, add, finish } = controlled('partition')
  const a = partition(0)
  add(a, 0)
  assert.equal(await scheduler.waitIdle(20), false)
  const idle = scheduler.waitIdle(5_000)
  await finish(0, 0)
  assert.equal(await idle, true)
})

test('a process function that rejects is reported and its record abandoned, never committed', async () => {
  const failures: unknown[] = []
  const scheduler = new Scheduler({
    ordering: 'partition',
    concurrency: 1,
    process: () => Promise.reject(new Error('bug')),
    released: () => {},
    failed: (error) => void failures.push(error)
  })
  const a = partition(0)
  a.progress.admit(0n)
  a.progress.accept(0n)
  scheduler.add(a, record(a, 0))
  await scheduler.waitIdle(1_000)
  assert.equal(failures.length, 1)
  assert.equal(a.progress.committable(), undefined)
})

test('after halt no lane starts another record, queued or new', async () => {
  const { scheduler, add, finish, started } = controlled('partition', 1)
  const [a, b] = [partition(0), partition(1)]
  add(a, 0)
  add(b, 0)
  add(b, 1)
  scheduler.halt()
  await finish(0, 0)
  add(a, 1)
  assert.deepEqual(started, ['0:0'])
})

test('a hold starts no record until unhold, lets running ones finish, then runs every waiting lane', async () => {
  const { scheduler, add, finish, started } = controlled('key', 2)
  const a = partition(0)
  add(a, 0, 'x')
  add(a, 1, 'y')
  add(a, 2, 'z') // waits for a slot
  add(a, 3, 'x') // waits for its key
  scheduler.hold()
  await finish(0, 0)
  await finish(0, 1)
  assert.deepEqual(
    started,
    ['0:0', '0:1'],
    'nothing starts during the hold, not even a freed slot’s next lane'
  )
  assert.equal(scheduler.active, 0)
  add(a, 4, 'w') // arrives during the hold
  assert.deepEqual(started, ['0:0', '0:1'])
  scheduler.unhold()
  assert.deepEqual(started.slice(2).sort(), ['0:2', '0:3'], 'both slots go to the lanes that waited')
  await finish(0, 2)
  assert.deepEqual(started.at(-1), '0:4', 'the record that came during the hold runs too')
})

/** A scheduler handing runs over (as batch routes make it); `settle(run, index)` settles one record of a run. */
function withRuns(size: number, wait: number, ordering: Ordering = 'partition') {
  const runs: Array<{
    offsets: number[]
    start: (from: number, to: number) => void
    held: () => Promise<void> | undefined
    settle: (index: number, outcome?: Outcome) => void
    end: () => void
  }> = []
  const failures: unknown[] = []
  const scheduler = new Scheduler({
    ordering,
    concurrency: 16,
    process: () => {
      throw new Error('a scheduler with runs hands every record over in a run')
    },
    run: {
      size,
      wait,
      process: (records, _state, control) =>
        new Promise<void>((resolve) => {
          runs.push({
            offsets: records.map((r) => Number(r.offset)),
            start: control.start,
            settle: (index, outcome = 'processed') => control.settle(index, outcome),
            held: control.held,
            end: resolve
          })
        })
    },
    released: () => {},
    failed: (error) => void failures.push(error)
  })
  const add = (state: PartitionState, offset: number, key: string | null = null) => {
    state.progress.admit(BigInt(offset))
    state.progress.accept(BigInt(offset))
    scheduler.add(state, record(state, offset, key))
  }
  const turn = () => new Promise((resolve) => setImmediate(resolve))
  return { scheduler, add, runs, failures, turn }
}

test('with runs, the records of a lane added in one turn are handed over together, at most the run size', async () => {
  const { add, runs, turn } = withRuns(3, 0)
  const a = partition(0)
  for (const offset of [0, 1, 2, 3, 4]) add(a, offset)
  await turn()
  assert.deepEqual(
    runs.map((r) => r.offsets),
    [[0, 1, 2]],
    'a full run starts at once; the lane then waits for it'
  )
  runs[0]!.end()
  await turn()
  await turn()
  assert.deepEqual(
    runs.map((r) => r.offsets),
    [
      [0, 1, 2],
      [3, 4]
    ]
  )
})

test('with runs, a lane short of a full run waits up to the run wait for more records', async () => {
  const { add, runs } = withRuns(10, 40)
  const a = partition(0)
  add(a, 0)
  await new Promise((resolve) => setTimeout(resolve, 10))
  add(a, 1)
  assert.equal(runs.length, 0, 'within the wait, nothing runs')
  await new Promise((resolve) => setTimeout(resolve, 60))
  assert.deepEqual(
    runs.map((r) => r.offsets),
    [[0, 1]]
  )
})

test('with runs, records settle as the run settles them and what a run leaves unsettled is abandoned', async () => {
  const { add, runs, turn } = withRuns(4, 0)
  const a = partition(0)
  for (const offset of [0, 1, 2, 3]) add(a, offset)
  await turn()
  runs[0]!.settle(0)
  runs[0]!.settle(1)
  assert.equal(a.progress.committable(), 2n, 'the settled prefix is committable while the run goes on')
  runs[0]!.end()
  await turn()
  assert.equal(a.progress.committable(), 2n, 'records 2 and 3, never settled, are abandoned: not committed')
  assert.equal(a.buffered, 0)
  assert.equal(a.inFlight, 0)
})

test('with runs in key ordering, a run holds one key’s records only', async () => {
  const { add, runs, turn } = withRuns(10, 0, 'key')
  const a = partition(0)
  add(a, 0, 'x')
  add(a, 1, 'y')
  add(a, 2, 'x')
  await turn()
  assert.deepEqual(runs.map((r) => r.offsets).sort(), [[0, 2], [1]])
})

test('with runs, records taken into a run count as unstarted until handed to a handler, so a rebalance does not wait for them', async () => {
  const { add, runs, turn } = withRuns(4, 0)
  const a = partition(0)
  for (const offset of [0, 1, 2, 3]) add(a, offset)
  await turn()
  assert.equal(a.inFlight, 4)
  assert.equal(a.unstarted, 4)
  runs[0]!.start(0, 2)
  assert.equal(a.unstarted, 2, 'two handed to the handler')
  runs[0]!.settle(0)
  runs[0]!.settle(3, 'abandoned')
  assert.equal(a.inFlight, 2)
  assert.equal(a.unstarted, 1, 'the abandoned one, never started, is no longer counted')
})

test('with runs, a hold gives running runs a promise that resolves at unhold', async () => {
  const { scheduler, add, runs, turn } = withRuns(2, 0)
  const a = partition(0)
  add(a, 0)
  add(a, 1)
  await turn()
  assert.equal(runs[0]!.held(), undefined)
  scheduler.hold()
  const held = runs[0]!.held()
  assert.ok(held instanceof Promise)
  let ended = false
  void held.then(() => {
    ended = true
  })
  await turn()
  assert.equal(ended, false)
  scheduler.unhold()
  await turn()
  assert.equal(ended, true)
})
