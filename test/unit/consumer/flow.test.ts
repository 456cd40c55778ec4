/**
 * Flow control alone: when the consumer stops fetching, when one partition is parked and
 * set aside, and when it is read again — against a subscription that records what it is told.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FlowControl } from '../../../src/consumer/flow.ts'
import { newPartitionState, type Outcome, type PartitionState } from '../../../src/consumer/partition.ts'
import { type Ordering, Scheduler } from '../../../src/consumer/scheduler.ts'
import type { InboundRecord, Subscription } from '../../../src/transport/types.ts'

const never = new AbortController().signal

/** A subscription that records the calls flow control makes. */
function recordingSubscription() {
  const calls: string[] = []
  const subscription: Subscription = {
    seek: (tp, offset) => void calls.push(`seek ${tp.partition}@${offset}`),
    park: (tp) => void calls.push(`park ${tp.partition}`),
    pause: () => void calls.push('pause'),
    resume: () => void calls.push('resume'),
    commit: async () => {},
    close: async () => {}
  }
  return { subscription, calls }
}

/** Flow control over a scheduler whose records stay in flight until `finishAll`. */
function setup({
  ordering = 'partition' as Ordering,
  maxBuffered = 10,
  maxBufferedPerPartition = 4,
  partitionCount = 2
} = {}) {
  const { subscription, calls } = recordingSubscription()
  const partitions = new Map<string, PartitionState>()
  const settles: Array<() => void> = []
  let flow!: FlowControl
  const scheduler = new Scheduler({
    ordering,
    concurrency: 1_000,
    process: () => new Promise<Outcome>((resolve) => settles.push(() => resolve('processed'))),
    released: (state) => flow.released(state),
    failed: () => {}
  })
  flow = new FlowControl({
    groupId: 'g',
    ordering,
    maxBuffered,
    maxBufferedPerPartition,
    scheduler,
    partitions,
    subscription: () => subscription,
    running: () => true
  })
  for (let p = 0; p < partitionCount; p++) {
    const state = newPartitionState({ topic: 't', partition: p }, never, never)
    partitions.set(state.key, state)
  }
  const state = (p: number) => partitions.get(`t:${p}`)!
  /** What the consumer does with a delivered record: take it, or park the partition. */
  const deliver = (p: number, offset: number, key: string | null = null): 'taken' | 'parked' | 'dropped' => {
    const s = state(p)
    s.progress.admit(BigInt(offset))
    if (s.pausedTail) {
      s.progress.dropFrom(BigInt(offset))
      return 'dropped'
    }
    if (flow.isFull(s)) {
      flow.park(s, BigInt(offset))
      return 'parked'
    }
    s.progress.accept(BigInt(offset))
    scheduler.add(s, record(p, offset, key))
    return 'taken'
  }
  /** Lets every record finish, including those started as others finish. */
  const finishAll = async () => {
    while (settles.length > 0) {
      for (const settle of settles.splice(0)) settle()
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  return { flow, scheduler, calls, state, deliver, finishAll }
}

function record(partition: number, offset: number, key: string | null): InboundRecord {
  return {
    topic: 't',
    partition,
    offset: BigInt(offset),
    key: key === null ? null : Buffer.from(key),
    value: null,
    headers: new Map(),
    timestamp: 0
  }
}

test('under maxBuffered every record is taken and fetching goes on', () => {
  const { deliver, calls } = setup({ maxBuffered: 10 })
  for (let offset = 0; offset < 9; offset++) assert.equal(deliver(0, offset), 'taken')
  assert.deepEqual(calls, [])
})

test('at maxBuffered fetching pauses; a partition far over its fair share is parked from that record on', () => {
  const { deliver, calls, state } = setup({ maxBuffered: 10, partitionCount: 2 })
  for (let offset = 0; offset < 10; offset++) deliver(0, offset)
  // Fair share is 5; partition 0 holds 10 ≥ 2 × 5.
  assert.equal(deliver(0, 10), 'parked')
  assert.deepEqual(calls, ['pause', 'park 0'])
  assert.equal(deliver(0, 11), 'dropped')
  assert.equal(
    state(0).progress.rewindPoint(),
    10n,
    'the commit point never passes the first set-aside record'
  )
})

test('in key order a full consumer pauses fetching but sets nothing aside', () => {
  const { deliver, calls } = setup({ ordering: 'key', maxBuffered: 10 })
  for (let offset = 0; offset < 12; offset++) assert.equal(deliver(0, offset, `k${offset}`), 'taken')
  assert.deepEqual(calls, ['pause'])
})

test('fetching resumes once a quarter of the buffer is free, and a parked partition is read again from its first set-aside record', async () => {
  const { deliver, calls, finishAll, state } = setup({ maxBuffered: 10 })
  for (let offset = 0; offset < 11; offset++) deliver(0, offset)
  assert.deepEqual(calls, ['pause', 'park 0'])
  await finishAll()
  assert.deepEqual(calls, ['pause', 'park 0', 'seek 0@10', 'resume'])
  assert.equal(state(0).pausedTail, false)
})

test('a partition blocked by a retry holds at most maxBufferedPerPartition, even with the consumer far from full', () => {
  const { deliver, state, calls } = setup({ maxBuffered: 100, maxBufferedPerPartition: 4 })
  state(0).retrying = 1
  for (let offset = 0; offset < 4; offset++) assert.equal(deliver(0, offset), 'taken')
  assert.equal(deliver(0, 4), 'parked')
  assert.equal(deliver(1, 0), 'taken', 'the other partitions keep flowing')
  assert.deepEqual(calls, ['park 0'])
})

test('shed sets aside what a newly blocked partition holds over its bound, keeping the lowest offsets', () => {
  const { flow, deliver, state, calls } = setup({
    ordering: 'key',
    maxBuffered: 100,
    maxBufferedPerPartition: 4
  })
  for (let offset = 0; offset < 8; offset++) deliver(0, offset, `k${offset % 3}`)
  const s = state(0)
  s.retrying = 1
  flow.shed(s)
  assert.ok(s.buffered <= 4, `holds ${s.buffered}`)
  assert.equal(s.pausedTail, true)
  assert.deepEqual(calls, [`park 0`])
  assert.equal(s.progress.rewindPoint(), BigInt(s.buffered))
})

test('a partition still preparing for its assignment listeners is not read again', async () => {
  const { deliver, calls, finishAll, state } = setup({ maxBuffered: 10 })
  for (let offset = 0; offset < 11; offset++) deliver(0, offset)
  state(0).preparing = true
  await finishAll()
  assert.deepEqual(
    calls,
    ['pause', 'park 0', 'resume'],
    'fetching resumes, the parked partition stays parked'
  )
  assert.equal(state(0).pausedTail, true)
})
