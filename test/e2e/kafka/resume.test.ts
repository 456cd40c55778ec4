import assert from 'node:assert/strict'
import { test } from 'node:test'
import { waitFor } from '../../../src/util/wait.ts'
import { useConsumer, useGroup, useProducer, useTopic } from '../../helpers/kafka.ts'

test('a consumer that commits and restarts resumes after its last committed offset', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const group = useGroup(t)
  const producer = useProducer(t)
  const total = 100
  await producer.send({
    messages: Array.from({ length: total }, (_, i) => ({ topic, key: `k${i % 7}`, value: String(i) }))
  })

  // First run: handle and commit 60 messages one by one, then stop.
  const first = useConsumer(t, group)
  const firstStream = await first.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest' })
  const handledFirst: string[] = []
  const committed = new Map<number, bigint>()
  for await (const message of firstStream) {
    handledFirst.push(message.value)
    await message.commit()
    committed.set(message.partition, message.offset + 1n)
    if (handledFirst.length === 60) break
  }
  await first.close(true)

  // Second run, same group: must start exactly at the committed offsets.
  const second = useConsumer(t, group)
  const secondStream = await second.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest' })
  const handledSecond: { value: string; partition: number; offset: bigint }[] = []
  secondStream.on('data', (message) => {
    handledSecond.push({ value: message.value, partition: message.partition, offset: message.offset })
  })
  await waitFor(() => handledFirst.length + handledSecond.length >= total, {
    timeout: 30_000,
    description: 'the rest of the messages'
  })

  for (const [partition, offset] of committed) {
    const firstAfterRestart = handledSecond.find((m) => m.partition === partition)
    if (firstAfterRestart) {
      assert.equal(firstAfterRestart.offset, offset, `partition ${partition} resumes at its committed offset`)
    }
  }
  const all = [...handledFirst, ...handledSecond.map((m) => m.value)]
  assert.equal(all.length, total, 'no message is read twice')
  assert.deepEqual(
    all.map(Number).sort((a, b) => a - b),
    Array.from({ length: total }, (_, i) => i),
    'no message is lost'
  )
})
