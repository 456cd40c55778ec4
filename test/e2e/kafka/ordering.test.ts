import assert from 'node:assert/strict'
import { test } from 'node:test'
import { waitFor } from '../../../src/util/wait.ts'
import { useConsumer, useGroup, useProducer, useTopic } from '../../helpers/kafka.ts'

test('messages produced with keys come back in per-partition order to a consumer group', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const group = useGroup(t)
  const producer = useProducer(t)

  const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`)
  const perKey = 25
  // Interleave keys so each partition receives several keys' messages mixed together.
  const sent: { key: string; value: string }[] = []
  for (let seq = 0; seq < perKey; seq++) {
    for (const key of keys) sent.push({ key, value: String(seq) })
  }
  for (let i = 0; i < sent.length; i += 50) {
    await producer.send({ messages: sent.slice(i, i + 50).map((m) => ({ topic, ...m })) })
  }

  const consumer = useConsumer(t, group)
  const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest' })
  const received: { key: string; value: string; partition: number; offset: bigint }[] = []
  stream.on('data', (message) => {
    received.push({
      key: message.key,
      value: message.value,
      partition: message.partition,
      offset: message.offset
    })
  })
  await waitFor(() => received.length >= sent.length, {
    timeout: 30_000,
    description: `${sent.length} messages`
  })

  assert.equal(received.length, sent.length, 'each message arrives once')
  const partitionOfKey = new Map<string, number>()
  const lastOffset = new Map<number, bigint>()
  const lastSeq = new Map<string, number>()
  for (const message of received) {
    const previousOffset = lastOffset.get(message.partition)
    assert.ok(
      previousOffset === undefined || message.offset > previousOffset,
      'offsets ascend within a partition'
    )
    lastOffset.set(message.partition, message.offset)

    assert.equal(
      partitionOfKey.get(message.key) ?? message.partition,
      message.partition,
      'a key stays on one partition'
    )
    partitionOfKey.set(message.key, message.partition)

    const seq = Number(message.value)
    assert.equal(
      seq,
      (lastSeq.get(message.key) ?? -1) + 1,
      `${message.key} arrives in the order it was produced`
    )
    lastSeq.set(message.key, seq)
  }
  assert.ok(new Set(partitionOfKey.values()).size > 1, 'the keys spread over more than one partition')
})
