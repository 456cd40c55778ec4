import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Admin, ConfigResourceTypes } from '@platformatic/kafka'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { type ClusterInfo, LocalKafka } from '../../../src/dev/kafka/index.ts'
import { clientOptions, type KafkaConnection } from '../../../src/kafka/connection.ts'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  useConsumer,
  useGroup,
  useProducer,
  useTopic,
  useTransport,
  watchGroup
} from '../../helpers/kafka.ts'

// A three-broker cluster of its own, beside the single test broker.
const cluster = new LocalKafka({
  name: 'test-ha',
  brokers: 3,
  port: Number(process.env.CONVEYOR_TEST_HA_PORT ?? 29192),
  log: (line) => process.stderr.write(`[kafka test-ha] ${line}\n`)
})
let info: ClusterInfo
let connection: KafkaConnection

before(async () => {
  await cluster.down({ purge: true })
  info = await cluster.up()
  connection = { brokers: info.bootstrap, clientId: 'conveyor-failover-test' }
})

after(() => cluster.down({ purge: true }))

async function partitions(admin: Admin, topic: string) {
  const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
  return metadata.topics.get(topic)!.partitions
}

test('a topic with replication factor 3 keeps accepting acks=all writes while one broker is stopped', async (t) => {
  assert.equal(info.brokers.filter((b) => b.running).length, 3, 'three brokers run')
  const admin = new Admin(clientOptions(connection))
  cleanup(t, () => admin.close())
  const topic = await useTopic(t, { partitions: 3, replicas: 3, connection })

  const [config] = await admin.describeConfigs({
    resources: [
      {
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: topic,
        configurationKeys: ['min.insync.replicas']
      }
    ]
  })
  assert.equal(config?.configs.find((c) => c.name === 'min.insync.replicas')?.value, '2')
  await waitFor(async () => (await partitions(admin, topic)).every((p) => p.isr.length === 3), {
    timeout: 30_000,
    description: 'every partition to have 3 in-sync replicas'
  })

  const producer = useProducer(t, connection)
  const send = (from: number) =>
    producer.send({
      messages: Array.from({ length: 50 }, (_, i) => ({
        topic,
        key: `k${(from + i) % 9}`,
        value: String(from + i)
      }))
    })
  await send(0)

  // Stop the leader of partition 0, so at least one partition must fail over.
  const victim = (await partitions(admin, topic))[0]!.leader
  await cluster.stopBroker(victim)
  assert.equal(
    cluster.status().brokers.find((b) => b.id === victim)?.running,
    false,
    `broker ${victim} is stopped`
  )
  await send(50)
  await send(100)

  const consumer = useConsumer(t, useGroup(t, connection), connection)
  const stream = await consumer.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest' })
  const values = new Set<string>()
  stream.on('data', (message) => values.add(message.value))
  await waitFor(() => values.size >= 150, { timeout: 60_000, description: 'all 150 messages' })
  assert.deepEqual(
    [...values].map(Number).sort((a, b) => a - b),
    Array.from({ length: 150 }, (_, i) => i),
    'every message written before and during the outage is there'
  )

  await cluster.startBroker(victim)
  await waitFor(async () => (await partitions(admin, topic)).every((p) => p.isr.length === 3), {
    timeout: 60_000,
    description: `broker ${victim} to rejoin the in-sync replicas`
  })
})

test('a Conveyor consumer keeps its membership while one of three brokers stops: its partitions go on from their new leaders, without a rejoin or a rebalance', async (t) => {
  const admin = new Admin(clientOptions(connection))
  cleanup(t, () => admin.close())
  const topic = await useTopic(t, { partitions: 12, replicas: 3, connection })
  await waitFor(async () => (await partitions(admin, topic)).every((p) => p.isr.length === 3), {
    timeout: 30_000,
    description: 'every partition to have 3 in-sync replicas'
  })
  const groupId = useGroup(t, connection)
  const group = watchGroup(t, groupId)
  const count = 8_000
  const producer = useProducer(t, connection)
  for (let from = 0; from < count; from += 1_000)
    await producer.send({
      messages: Array.from({ length: 1_000 }, (_, j) => ({
        topic,
        key: `k${(from + j) % 500}`,
        value: JSON.stringify({ message_type: 'n', i: from + j })
      }))
    })
  const handled = new Set<number>()
  const consumer = createConsumer({
    transport: useTransport(t, { connection }),
    groupId,
    topics: [topic],
    concurrency: 16,
    routes: {
      n: {
        handler: async (message) => {
          await new Promise((resolve) => setTimeout(resolve, 2))
          handled.add((message.value as { i: number }).i)
        }
      }
    }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  // Stopped while a backlog is being read, so fetches are in flight to it as it goes.
  await waitFor(() => handled.size >= count / 4, { timeout: 60_000, description: 'a quarter handled' })
  const victim = Math.max(...info.brokers.map((b) => b.id))
  await cluster.stopBroker(victim)
  cleanup(t, async () => {
    await cluster.startBroker(victim)
    await waitFor(async () => (await partitions(admin, topic)).every((p) => p.isr.length === 3), {
      timeout: 60_000,
      description: `broker ${victim} back among the in-sync replicas`
    })
  })
  await waitFor(() => handled.size === count, { timeout: 120_000, description: 'every message' })
  assert.deepEqual(group.failures, [], 'no failure was reported')
  assert.equal(group.assignments, 1, 'the consumer never joined again')
})
