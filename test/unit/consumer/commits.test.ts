/**
 * The commit seam: the Committer offers a strategy what has finished, one commit at a
 * time; a consumer given its own strategy commits through it and nowhere else.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { type TestContext, test } from 'node:test'
import { type CommitStrategy, Committer, groupOffsets } from '../../../src/consumer/commits.ts'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { newPartitionState, type PartitionState } from '../../../src/consumer/partition.ts'
import { errorChannel } from '../../../src/instrumentation/channels.ts'
import { MemoryTransport } from '../../../src/testing/memory-transport.ts'
import type { RecordPosition, Subscription } from '../../../src/transport/types.ts'
import { waitFor } from '../../../src/util/wait.ts'

const never = new AbortController().signal

function finished(partition: number, offsets: number[], pending: number[] = []): PartitionState {
  const state = newPartitionState({ topic: 't', partition }, never, never)
  for (const offset of [...offsets, ...pending].sort((a, b) => a - b)) {
    state.progress.admit(BigInt(offset))
    state.progress.accept(BigInt(offset))
  }
  for (const offset of offsets) state.progress.finish(BigInt(offset))
  return state
}

const subscription = { commit: async () => {} } as unknown as Subscription

test('the strategy is offered, per partition, the offset below which everything finished, and only offsets that moved', async () => {
  const offered: RecordPosition[][] = []
  const strategy: CommitStrategy = { commit: async (offsets) => void offered.push([...offsets]) }
  const committer = new Committer('g', strategy, () => subscription)
  const a = finished(0, [0, 1, 3], [2])
  const b = finished(1, [0])
  await committer.commit([a, b])
  assert.deepEqual(offered, [
    [
      { topic: 't', partition: 0, offset: 2n },
      { topic: 't', partition: 1, offset: 1n }
    ]
  ])
  a.progress.finish(2n)
  await committer.commit([a, b])
  assert.deepEqual(offered[1], [{ topic: 't', partition: 0, offset: 4n }], 'partition 1 did not move')
  assert.equal(a.progress.lastCommitted, 4n)
})

test('commits run one at a time: a commit asked for during another waits for it, then commits what it asked for', async () => {
  const order: string[] = []
  let release!: () => void
  const strategy: CommitStrategy = {
    commit: async (offsets) => {
      order.push(`start ${offsets.map((o) => o.offset).join(',')}`)
      if (order.length === 1) await new Promise<void>((resolve) => (release = resolve))
      order.push('end')
    }
  }
  const committer = new Committer('g', strategy, () => subscription)
  const a = finished(0, [0])
  const first = committer.commit([a])
  a.progress.admit(1n)
  a.progress.accept(1n)
  a.progress.finish(1n)
  const second = committer.commit([a])
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(order, ['start 1'])
  release()
  await Promise.all([first, second])
  assert.deepEqual(order, ['start 1', 'end', 'start 2', 'end'])
})

test('a commit the strategy rejects is reported and offered again next time', async () => {
  let fail = true
  const offered: bigint[] = []
  const strategy: CommitStrategy = {
    commit: async (offsets) => {
      offered.push(offsets[0]!.offset)
      if (fail) throw new Error('coordinator moved')
    }
  }
  const errors: unknown[] = []
  const onError = (event: unknown) => void errors.push(event)
  errorChannel.subscribe(onError)
  try {
    const committer = new Committer('g', strategy, () => subscription)
    const a = finished(0, [0])
    await committer.commit([a])
    assert.equal(errors.length, 1)
    assert.equal(a.progress.lastCommitted, undefined)
    fail = false
    await committer.commit([a])
    assert.deepEqual(offered, [1n, 1n])
    assert.equal(a.progress.lastCommitted, 1n)
  } finally {
    errorChannel.unsubscribe(onError)
  }
})

test('groupOffsets commits through the subscription', async () => {
  const committed: RecordPosition[] = []
  const own = { commit: async (offsets: RecordPosition[]) => void committed.push(...offsets) } as Subscription
  await groupOffsets.commit([{ topic: 't', partition: 0, offset: 5n }], own)
  assert.deepEqual(committed, [{ topic: 't', partition: 0, offset: 5n }])
})

test('a consumer given a commit strategy commits what it finished through it, and not to the group', async (t) => {
  const transport = new MemoryTransport()
  const topic = `t-${randomUUID()}`
  const groupId = `g-${randomUUID()}`
  transport.createTopic(topic, 2)
  const recorded = new Map<number, bigint>()
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 10,
    commitStrategy: {
      commit: async (offsets) => {
        for (const { partition, offset } of offsets) recorded.set(partition, offset)
      }
    },
    routes: { w: { handler: () => {} } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await transport
    .publisher()
    .send(Array.from({ length: 10 }, (_, i) => ({ topic, partition: i % 2, value: '{"message_type":"w"}' })))
  await waitFor(() => recorded.get(0) === 5n && recorded.get(1) === 5n)
  assert.equal(transport.committed(groupId, topic, 0), undefined)
  assert.equal(transport.committed(groupId, topic, 1), undefined)
})

test('a commit strategy without a commit function fails construction with the field named', () => {
  assert.throws(
    () =>
      createConsumer({
        transport: new MemoryTransport(),
        groupId: 'g',
        topics: ['t'],
        routes: { w: { handler: () => {} } },
        commitStrategy: {} as CommitStrategy
      }),
    /commitStrategy/
  )
})

/** A consumer with no timed commit in the test's span that has handled `count` records of one partition. */
async function handledWith(t: TestContext, commitAfter: number, count: number) {
  const transport = new MemoryTransport()
  const topic = `t-${randomUUID()}`
  const groupId = `g-${randomUUID()}`
  transport.createTopic(topic, 1)
  let handled = 0
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    commitInterval: 600_000,
    commitAfter,
    routes: { w: { handler: async () => void handled++ } }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  await transport
    .publisher()
    .send(Array.from({ length: count }, () => ({ topic, partition: 0, value: '{"message_type":"w"}' })))
  await waitFor(() => handled === count)
  return { transport, topic, groupId }
}

test('under load a commit comes once commitAfter records finished, long before the commit interval', async (t) => {
  const { transport, topic, groupId } = await handledWith(t, 50, 120)
  await waitFor(() => (transport.committed(groupId, topic, 0) ?? 0n) >= 100n, {
    timeout: 2_000,
    description: 'a commit brought forward by the finished count'
  })
})

test('commitAfter 0 commits on the interval only, and a negative commitAfter fails construction', async (t) => {
  const { transport, topic, groupId } = await handledWith(t, 0, 2_000)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(transport.committed(groupId, topic, 0), undefined)
  assert.throws(
    () =>
      createConsumer({
        transport,
        groupId: 'g',
        topics: [topic],
        commitAfter: -1,
        routes: { w: { handler: () => {} } }
      }),
    { path: 'commitAfter' }
  )
})
