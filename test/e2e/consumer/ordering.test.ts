import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { Channels, type MessageRetryEvent, type PausedEvent } from '../../../src/instrumentation/channels.ts'
import { forever } from '../../../src/retry/policy.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, useGroup, useProducer, useTopic, useTransport } from '../../helpers/kafka.ts'
import { type Handled, orderViolations, produceKeyed } from '../../helpers/produce.ts'

interface Work {
  key: string
  seq: number
}

test('key mode handles each key in offset order while many keys run at once', async (t) => {
  const topic = await useTopic(t, { partitions: 6 })
  const producer = useProducer(t)
  const keys = 100
  const count = 10_000
  await produceKeyed(producer, topic, { count, keys })

  const handled: Handled[] = []
  let running = 0
  let maxRunning = 0
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId: useGroup(t),
    topics: [topic],
    ordering: 'key',
    concurrency: 32,
    routes: {
      work: {
        handler: async (message) => {
          running++
          maxRunning = Math.max(maxRunning, running)
          const { key, seq } = message.value as Work
          handled.push({ key, seq, partition: message.partition, offset: message.offset })
          await sleep(Math.random() * 3)
          running--
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(() => handled.length >= count, { timeout: 120_000, description: `${count} messages` })

  assert.deepEqual(orderViolations(handled, count / keys), [], 'every key in order, none missing')
  assert.equal(handled.length, count, 'each message handled once')
  assert.ok(maxRunning > 1, `handlers ran concurrently (at most ${maxRunning} at once)`)
})

test('a key that fails for ever blocks only itself; once fixed, its messages follow in order', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const producer = useProducer(t)
  const keys = 10
  // 100 per key, ~500 per partition: the partition buffer (150) fills and is re-read
  // several times while key-3's 100 waiting messages stay under it.
  const count = 1_000
  await produceKeyed(producer, topic, { count, keys })

  let poisoned = true
  const handled: Handled[] = []
  const retries: MessageRetryEvent[] = []
  const pauses: PausedEvent[] = []
  const onRetry = (event: unknown) => retries.push(event as MessageRetryEvent)
  const onPause = (event: unknown) => pauses.push(event as PausedEvent)
  subscribe(Channels.messageRetry, onRetry)
  subscribe(Channels.paused, onPause)
  cleanup(t, () => {
    unsubscribe(Channels.messageRetry, onRetry)
    unsubscribe(Channels.paused, onPause)
  })

  const consumer = createConsumer({
    transport: useTransport(t),
    groupId: useGroup(t),
    topics: [topic],
    ordering: 'key',
    concurrency: 8,
    maxBufferedPerPartition: 150,
    routes: {
      work: {
        retry: forever({ initialDelay: 5, maxDelay: 40, jitter: false }),
        // Asynchronous, as a handler calling another service is: records arrive faster than
        // they finish, so the partition buffers fill and the pause path is exercised.
        handler: async (message) => {
          await new Promise((resolve) => setImmediate(resolve))
          const { key, seq } = message.value as Work
          if (key === 'key-3' && poisoned) throw new Error('downstream rejects key-3')
          handled.push({ key, seq, partition: message.partition, offset: message.offset })
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())

  await waitFor(() => handled.length >= count - count / keys, {
    timeout: 60_000,
    description: 'every other key'
  })
  assert.equal(handled.filter((h) => h.key === 'key-3').length, 0, 'the failing key is not skipped')
  const attemptsBefore = retries.length
  await waitFor(() => retries.length >= attemptsBefore + 3, {
    description: 'more retries of the failing key'
  })
  assert.ok(
    retries.every((r) => r.delay <= 40),
    'retry delays stay under the cap'
  )
  assert.ok(
    retries.some((r) => r.delay === 40),
    'backoff grew up to its cap'
  )
  assert.ok(pauses.length > 0, 'partitions were paused when their buffer filled, and read again')

  poisoned = false
  await waitFor(() => handled.length >= count, { timeout: 60_000, description: 'the fixed key to catch up' })
  assert.deepEqual(
    orderViolations(handled, count / keys),
    [],
    'every key in order, none missing, key-3 included'
  )
})

test('a partition that fails for ever blocks only itself in partition mode', async (t) => {
  const topic = await useTopic(t, { partitions: 4 })
  const producer = useProducer(t)
  const keys = 40
  const count = 4_000
  await produceKeyed(producer, topic, { count, keys })

  let poisoned = true
  const handled: Handled[] = []
  let blockedAttempts = 0
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId: useGroup(t),
    topics: [topic],
    ordering: 'partition',
    maxBufferedPerPartition: 50,
    routes: {
      work: {
        retry: forever({ initialDelay: 5, maxDelay: 40 }),
        handler: (message) => {
          const { key, seq } = message.value as Work
          if (message.partition === 1 && poisoned) {
            blockedAttempts++
            throw new Error('partition 1 is poisoned')
          }
          handled.push({ key, seq, partition: message.partition, offset: message.offset })
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())

  const blockedKeys = new Set<string>()
  await waitFor(
    () => {
      const others = handled.filter((h) => h.partition !== 1)
      // Each key lives on one partition: the keys never handled are the blocked partition's.
      const perKey = new Map<string, number>()
      for (const h of others) perKey.set(h.key, (perKey.get(h.key) ?? 0) + 1)
      for (let i = 0; i < keys; i++) if (!perKey.has(`key-${i}`)) blockedKeys.add(`key-${i}`)
      return others.length === count - blockedKeys.size * (count / keys) && blockedKeys.size > 0
    },
    { timeout: 60_000, description: 'every partition but the poisoned one to finish' }
  )
  assert.equal(handled.filter((h) => h.partition === 1).length, 0, 'the poisoned partition does not move')
  const before = blockedAttempts
  await waitFor(() => blockedAttempts > before + 2, {
    description: 'the poisoned partition to keep retrying'
  })

  poisoned = false
  await waitFor(() => handled.length >= count, {
    timeout: 60_000,
    description: 'the poisoned partition to catch up'
  })
  assert.deepEqual(orderViolations(handled, count / keys), [])
})
