/**
 * OffsetCommit with metadata from a member of a real group: the broker stores the text
 * beside the offset (as Kafka's admin API reads it back) and refuses metadata over its limit.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Consumer } from '@platformatic/kafka'
import { clientOptions } from '../../../src/kafka/connection.ts'
import { commitWithMetadata } from '../../../src/kafka/offset-commit.ts'
import { encodeFinished } from '../../../src/offsets/finished-metadata.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, testConnection, useGroup, useTopic } from '../../helpers/kafka.ts'

async function member(t: Parameters<typeof useTopic>[0], groupId: string, topic: string) {
  const consumer = new Consumer({
    ...clientOptions(testConnection()),
    groupId,
    autocommit: false,
    maxWaitTime: 200
  })
  cleanup(t, () => consumer.close(true))
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest' })
  cleanup(t, () => stream.close())
  await waitFor(() => consumer.assignments !== null && consumer.memberId !== null, {
    description: 'a member'
  })
  return consumer
}

async function stored(groupId: string, topic: string) {
  const admin = new Admin(clientOptions(testConnection()))
  try {
    const [group] = await admin.listConsumerGroupOffsets({ groups: [groupId] })
    return (group?.topics.find((t) => t.name === topic)?.partitions ?? [])
      .map((p) => ({ partition: p.partitionIndex, offset: p.committedOffset, metadata: p.metadata }))
      .sort((a, b) => a.partition - b.partition)
  } finally {
    await admin.close()
  }
}

test('a group member commits offsets with metadata, and the broker keeps the metadata beside each offset', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const groupId = useGroup(t)
  const consumer = await member(t, groupId, topic)
  const finished = encodeFinished(5n, [7n, 8n, 9n])
  await commitWithMetadata(consumer, [
    { topic, partition: 0, offset: 5n, metadata: finished },
    { topic, partition: 1, offset: 3n, metadata: null }
  ])
  assert.deepEqual(await stored(groupId, topic), [
    { partition: 0, offset: 5n, metadata: finished },
    { partition: 1, offset: 3n, metadata: '' }
  ])
})

test('metadata over the broker’s limit is refused and the stored offset stays as it was', async (t) => {
  const topic = await useTopic(t)
  const groupId = useGroup(t)
  const consumer = await member(t, groupId, topic)
  await commitWithMetadata(consumer, [{ topic, partition: 0, offset: 1n, metadata: 'ok' }])
  await assert.rejects(
    commitWithMetadata(consumer, [{ topic, partition: 0, offset: 2n, metadata: 'x'.repeat(5_000) }])
  )
  assert.deepEqual(await stored(groupId, topic), [{ partition: 0, offset: 1n, metadata: 'ok' }])
})
