/**
 * Batch routes on a real broker: what a team consuming reports in batches of 100 relies
 * on — each batch one partition's messages in offset order, a poison report dead-lettered
 * alone with its neighbours processed, and the group's offsets committed past them all.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { BatchError } from '../../../src/core/errors.ts'
import type { Message } from '../../../src/core/message.ts'
import { bounded } from '../../../src/retry/policy.ts'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  committedOffsets,
  readAll,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'

interface Report {
  message_type: 'report'
  id: number
  poison?: boolean
}

/** `count` reports with ids 0…count-1 over `partitions` partitions (id modulo), the one with id `poison` marked so. */
async function produceReports(
  t: Parameters<typeof useProducer>[0],
  topic: string,
  count: number,
  { partitions = 1, poison }: { partitions?: number; poison?: number } = {}
) {
  await useProducer(t).send({
    messages: Array.from({ length: count }, (_, id) => ({
      topic,
      partition: id % partitions,
      value: JSON.stringify({ message_type: 'report', id, ...(id === poison ? { poison: true } : {}) })
    }))
  })
}

test('a batch route gets batches of one partition in offset order, at most maxSize; a poison report is dead-lettered alone and every other is processed once, the offsets committed to the end', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const groupId = useGroup(t)
  await produceReports(t, topic, 1_500, { partitions: 3, poison: 700 })
  const batches: Array<{ partition: number; offsets: bigint[] }> = []
  const processed = new Map<number, number>()
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    commitInterval: 100,
    routes: {
      report: {
        batch: { maxSize: 100 },
        retry: bounded({ retries: 2, initialDelay: 20, maxDelay: 50 }),
        handleBatch: (messages: readonly Message<Report>[]) => {
          batches.push({ partition: messages[0]!.partition, offsets: messages.map((m) => m.offset) })
          if (messages.some((m) => m.value.poison)) throw new Error('a report without an organisation')
          for (const m of messages) processed.set(m.value.id, (processed.get(m.value.id) ?? 0) + 1)
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  const [dead] = await readAll(t, `${topic}.dlq`, 1)
  await waitFor(() => processed.size === 1_499, {
    timeout: 60_000,
    description: 'every other report processed'
  })
  assert.equal(JSON.parse(String(dead?.value)).id, 700)
  assert.equal(dead?.headers.get('dlq_reason')?.toString(), 'retries_exhausted')
  assert.ok(
    [...processed.values()].every((times) => times === 1),
    'each once'
  )
  assert.ok(!processed.has(700))
  for (const { partition, offsets } of batches) {
    assert.ok(offsets.length <= 100, 'at most maxSize')
    for (let i = 1; i < offsets.length; i++)
      assert.equal(offsets[i], offsets[i - 1]! + 1n, 'consecutive offsets of one partition')
    assert.ok(partition >= 0 && partition < 3)
  }
  const sizes = batches.map((b) => b.offsets.length)
  assert.ok(Math.max(...sizes) === 100, `full batches when a backlog waits (largest ${Math.max(...sizes)})`)
  await waitFor(async () => (await committedOffsets(topic, 3, groupId)).every((offset) => offset === 500n), {
    timeout: 10_000,
    description: 'every partition committed to its end'
  })
})

test('a BatchError naming the failing message commits the messages before it while that one waits for its retry', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  await produceReports(t, topic, 50)
  let broken = true
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    commitInterval: 100,
    routes: {
      report: {
        retry: bounded({ retries: 1_000, initialDelay: 50, maxDelay: 50, jitter: false }),
        handleBatch: (messages: readonly Message<Report>[]) => {
          const at = messages.findIndex((m) => m.value.id === 30)
          if (broken && at >= 0) throw new BatchError(at, new Error('the API answered 503 for report 30'))
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(async () => (await committedOffsets(topic, 1, groupId))[0] === 30n, {
    timeout: 30_000,
    description: 'offsets committed up to the failing report'
  })
  const [waiting] = consumer.status().partitions[0]!.retrying
  assert.equal(waiting?.offset, '30')
  assert.match(waiting?.error ?? '', /503 for report 30/)
  broken = false
  await waitFor(async () => (await committedOffsets(topic, 1, groupId))[0] === 50n, {
    timeout: 30_000,
    description: 'the rest once the failing report went through'
  })
})

test('a batch of 100 whose 37th message is poison: the 36 before it are committed while it retries, it alone reaches the DLQ after its retries, and the other 63 are handled', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  await produceReports(t, topic, 100, { poison: 36 })
  const sizes: number[] = []
  const handled = new Map<number, number>()
  const attempts: number[] = []
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    commitInterval: 100,
    routes: {
      report: {
        batch: { maxSize: 100, maxWait: 2_000 },
        retry: bounded({ retries: 2, initialDelay: 700, maxDelay: 700, jitter: false }),
        handleBatch: (messages: readonly Message<Report>[]) => {
          sizes.push(messages.length)
          const poison = messages.find((m) => m.value.poison)
          if (poison) {
            if (messages.length === 1) attempts.push(poison.attempt)
            throw new Error('the report names no organisation')
          }
          for (const m of messages) handled.set(m.value.id, (handled.get(m.value.id) ?? 0) + 1)
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(async () => (await committedOffsets(topic, 1, groupId))[0] === 36n, {
    timeout: 30_000,
    description: 'the 36 before the poison committed'
  })
  assert.equal(
    consumer.status().partitions[0]?.retrying[0]?.offset,
    '36',
    'while the poison waits for its retry'
  )
  assert.equal(sizes[0], 100, 'one batch of 100 first')
  const [dead] = await readAll(t, `${topic}.dlq`, 1)
  assert.equal(dead?.headers.get('dlq_source_offset')?.toString(), '36')
  assert.equal(dead?.headers.get('dlq_attempts')?.toString(), '3')
  assert.deepEqual(attempts, [1, 2, 3], 'found alone, then retried twice by the policy')
  await waitFor(() => handled.size === 99, { timeout: 30_000, description: 'the other 63 handled' })
  assert.ok(
    [...handled.values()].every((times) => times === 1),
    'each once'
  )
  await waitFor(async () => (await committedOffsets(topic, 1, groupId))[0] === 100n, {
    timeout: 10_000,
    description: 'committed to the end'
  })
})

test('a rebalance does not wait for a batch message waiting for its retry: a second member gets its partitions long before the drain timeout', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const groupId = useGroup(t)
  await produceReports(t, topic, 40, { partitions: 2, poison: 10 })
  const route = {
    batch: { maxSize: 20 },
    retry: bounded({ retries: 5, initialDelay: 60_000, maxDelay: 60_000, jitter: false }),
    handleBatch: (messages: readonly Message<Report>[]) => {
      const at = messages.findIndex((m) => m.value.poison)
      if (at >= 0) throw new BatchError(at, new Error('report 10 is refused'))
    }
  }
  const options = {
    groupId,
    topics: [topic],
    drainTimeout: 120_000,
    sessionTimeout: 10_000,
    heartbeatInterval: 500,
    routes: { report: route }
  }
  const first = createConsumer({ transport: useTransport(t), ...options })
  await first.start()
  cleanup(t, () => first.stop({ timeout: 1_000 }))
  await waitFor(() => first.status().partitions.some((p) => p.retrying.length === 1), {
    timeout: 30_000,
    description: 'report 10 waiting for its retry'
  })
  const second = createConsumer({ transport: useTransport(t), ...options })
  await second.start()
  cleanup(t, () => second.stop({ timeout: 1_000 }))
  await waitFor(() => second.status().partitions.length === 1, {
    timeout: 40_000,
    description: 'the second member assigned a partition while report 10 waits (drain timeout 120 s)'
  })
})
