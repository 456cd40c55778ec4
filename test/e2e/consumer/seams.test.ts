/**
 * The runtime's two seams on the real broker: assignment listeners (a partition waits for
 * its `assigned` hook and may start where a store outside Kafka says) and commit
 * strategies (finished offsets go where the strategy puts them, not to the group).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type AssignmentListener, createConsumer } from '../../../src/consumer/consumer.ts'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  committedOffsets,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'

async function produce(
  t: Parameters<typeof useProducer>[0],
  topic: string,
  partitions: number,
  perPartition: number
) {
  const producer = useProducer(t)
  const messages = []
  for (let partition = 0; partition < partitions; partition++)
    for (let n = 0; n < perPartition; n++)
      messages.push({ topic, partition, value: JSON.stringify({ message_type: 'change', n }) })
  await producer.send({ messages })
}

test('a partition is handled only after its assigned hook resolved, from the position the hook read from its own store', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const groupId = useGroup(t)
  await produce(t, topic, 2, 10)
  // Where a sink says each partition is: its own table, not the group's offsets.
  const stored = new Map([
    [0, 4n],
    [1, 0n]
  ])
  let hooksDone = 0
  let handledBeforeHooks = 0
  const listener: AssignmentListener = {
    assigned: async ({ partition }, start) => {
      await sleep(300)
      start.seek(stored.get(partition)!)
      hooksDone++
    }
  }
  const handled: Array<{ partition: number; n: number }> = []
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    commitInterval: 100,
    assignmentListeners: [listener],
    routes: {
      change: {
        handler: (m) => {
          if (hooksDone < 2) handledBeforeHooks++
          handled.push({ partition: m.partition, n: (m.value as { n: number }).n })
        }
      }
    }
  })
  cleanup(t, () => consumer.stop())
  await consumer.start()
  await waitFor(() => handled.length === 16, { timeout: 30_000, description: '16 records handled' })
  await sleep(300)
  assert.equal(handledBeforeHooks, 0)
  const of = (p: number) => handled.filter((h) => h.partition === p).map((h) => h.n)
  assert.deepEqual(of(0), [4, 5, 6, 7, 8, 9], 'partition 0 starts at its stored position, each record once')
  assert.deepEqual(of(1), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  await waitFor(async () => (await committedOffsets(topic, 2, groupId)).every((o) => o === 10n), {
    timeout: 10_000,
    description: 'the group offsets at the ends'
  })
})

test('a commit strategy receives each partition’s finished offsets and the group’s own offsets stay unset', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const groupId = useGroup(t)
  await produce(t, topic, 2, 25)
  const sink = new Map<number, bigint>()
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    commitInterval: 100,
    commitStrategy: {
      commit: async (offsets) => {
        for (const { partition, offset } of offsets) {
          assert.ok(offset > (sink.get(partition) ?? -1n), 'offsets only move forward')
          sink.set(partition, offset)
        }
      }
    },
    routes: { change: { handler: () => {} } }
  })
  cleanup(t, () => consumer.stop())
  await consumer.start()
  await waitFor(() => sink.get(0) === 25n && sink.get(1) === 25n, {
    timeout: 30_000,
    description: 'the strategy told both ends'
  })
  await consumer.stop()
  assert.deepEqual(await committedOffsets(topic, 2, groupId), [-1n, -1n])
})
