import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, useGroup, useProducer, useTopic, useTransport } from '../../helpers/kafka.ts'
import { type Handled, orderViolations, produceKeyed } from '../../helpers/produce.ts'

test('a slow handler against a large backlog holds at most maxBuffered messages plus one fetch, and loses none', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const keys = 30
  const count = 30_000
  await produceKeyed(useProducer(t), topic, { count, keys })

  const maxBuffered = 500
  // One fetch brings at most 32 KiB; each record is at least 60 bytes on the wire.
  const fetchMaxBytes = 32 * 1024
  const bound = maxBuffered + Math.ceil(fetchMaxBytes / 60)
  const handled: Handled[] = []
  let slow = true
  const consumer = createConsumer({
    transport: useTransport(t, { fetchMaxBytes, fetchMaxBytesPerPartition: fetchMaxBytes }),
    groupId: useGroup(t),
    topics: [topic],
    ordering: 'key',
    concurrency: 16,
    maxBuffered,
    routes: {
      work: {
        handler: async (message) => {
          const { key, seq } = message.value as { key: string; seq: number }
          handled.push({ key, seq, partition: message.partition, offset: message.offset })
          if (slow) await sleep(20)
        }
      }
    }
  })
  let highest = 0
  const sampler = setInterval(() => {
    highest = Math.max(highest, consumer.buffered)
  }, 2)
  cleanup(t, () => clearInterval(sampler))
  await consumer.start()
  cleanup(t, () => consumer.stop())

  await waitFor(() => handled.length >= 1_000, { timeout: 60_000, description: '1 000 slow messages' })
  assert.ok(
    highest >= maxBuffered && highest <= bound,
    `buffered reached ${maxBuffered} and stayed within ${bound} (highest ${highest})`
  )

  slow = false // let the rest through quickly, to check nothing set aside was lost
  await waitFor(() => handled.length >= count, { timeout: 120_000, description: 'the whole backlog' })
  assert.ok(highest <= bound, `buffered stayed within ${bound} (highest ${highest})`)
  assert.deepEqual(orderViolations(handled, count / keys), [])
  assert.equal(handled.length, count, 'each message once')
})
