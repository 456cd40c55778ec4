import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { KafkaTransport } from '../../../src/kafka/transport.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, testConnection, useGroup, useProducer, useTopic } from '../../helpers/kafka.ts'
import { type Handled, orderViolations, produceKeyed } from '../../helpers/produce.ts'

const byMember = new Map<string, number>()

function member(t: TestContext, name: string, topic: string, groupId: string, handled: Handled[]) {
  const transport = new KafkaTransport({
    connection: { ...testConnection(), clientId: name },
    maxWaitTime: 200
  })
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    ordering: 'key',
    concurrency: 16,
    commitInterval: 200,
    sessionTimeout: 10_000,
    heartbeatInterval: 500,
    routes: {
      work: {
        handler: async (message) => {
          const { key, seq } = message.value as { key: string; seq: number }
          handled.push({ key, seq, partition: message.partition, offset: message.offset })
          byMember.set(name, (byMember.get(name) ?? 0) + 1)
          await sleep(Math.random() * 2)
        }
      }
    }
  })
  const stop = async () => {
    await consumer.stop()
    await transport.close()
  }
  cleanup(t, stop)
  return { consumer, stop }
}

test('while the group grows from 1 to 3 members and shrinks back to 1, no message is missed and each key stays in order', async (t) => {
  const topic = await useTopic(t, { partitions: 6 })
  const groupId = useGroup(t)
  const keys = 200
  const count = 20_000
  const producer = useProducer(t)
  // In three parts, so that each phase has work left when it starts, however fast the members are.
  await produceKeyed(producer, topic, { count: 8_000, keys })
  const handled: Handled[] = []
  const unique = () => new Set(handled.map((h) => `${h.partition}:${h.offset}`)).size

  const a = member(t, 'member-a', topic, groupId, handled)
  await a.consumer.start()
  await waitFor(() => unique() >= 2_000, { timeout: 60_000, description: '2 000 messages on one member' })

  const b = member(t, 'member-b', topic, groupId, handled)
  const c = member(t, 'member-c', topic, groupId, handled)
  await Promise.all([b.consumer.start(), c.consumer.start()])
  await waitFor(
    () => b.consumer.status().partitions.length > 0 && c.consumer.status().partitions.length > 0,
    {
      timeout: 60_000,
      description: 'three members with partitions'
    }
  )
  await produceKeyed(producer, topic, { count: 8_000, keys, from: 8_000 })
  await waitFor(() => unique() >= 16_000, {
    timeout: 60_000,
    description: '16 000 messages on three members'
  })

  await Promise.all([b.stop(), c.stop()])
  await produceKeyed(producer, topic, { count: 4_000, keys, from: 16_000 })
  await waitFor(() => unique() >= count, { timeout: 90_000, description: 'every message back on one member' })

  assert.ok(
    (byMember.get('member-b') ?? 0) > 0 && (byMember.get('member-c') ?? 0) > 0,
    'the new members took part'
  )
  assert.equal(unique(), count, 'no message missing')
  assert.deepEqual(orderViolations(handled, count / keys), [], 'every key in order (re-deliveries aside)')
  const redelivered = handled.length - count
  t.diagnostic(
    `${redelivered} messages handled again after rebalances (at least once); by member: ${JSON.stringify([...byMember])}`
  )
})
