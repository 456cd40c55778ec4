import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, useGroup, useProducer, useTopic, useTransport } from '../../helpers/kafka.ts'
import { produceKeyed } from '../../helpers/produce.ts'

test('a consumer on the KIP-848 group protocol (groupProtocol: consumer) handles every message', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  await produceKeyed(useProducer(t), topic, { count: 300, keys: 10 })
  const seen = new Set<string>()
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId: useGroup(t),
    topics: [topic],
    groupProtocol: 'consumer',
    routes: { work: { handler: (m) => void seen.add(`${m.partition}:${m.offset}`) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(() => seen.size >= 300, { timeout: 30_000, description: '300 messages' })
  assert.equal(seen.size, 300)
})

test('a static member (groupInstanceId) that restarts resumes after its committed offsets', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const groupId = useGroup(t)
  const producer = useProducer(t)
  await produceKeyed(producer, topic, { count: 100, keys: 4 })
  const seen: string[] = []
  const make = () =>
    createConsumer({
      transport: useTransport(t),
      groupId,
      topics: [topic],
      groupInstanceId: 'instance-1',
      routes: { work: { handler: (m) => void seen.push(`${m.partition}:${m.offset}`) } }
    })
  const first = make()
  await first.start()
  await waitFor(() => seen.length >= 100, { timeout: 30_000 })
  await first.stop()
  await produceKeyed(producer, topic, { count: 100, keys: 4 })
  const second = make()
  await second.start()
  cleanup(t, () => second.stop())
  await waitFor(() => seen.length >= 200, { timeout: 30_000, description: 'the second hundred' })
  assert.equal(new Set(seen).size, 200, 'nothing handled twice')
})
