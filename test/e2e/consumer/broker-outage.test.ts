import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { after, before, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { LocalKafka } from '../../../src/dev/kafka/index.ts'
import { Channels } from '../../../src/instrumentation/channels.ts'
import { clientOptions, type KafkaConnection } from '../../../src/kafka/connection.ts'
import { KafkaTransport } from '../../../src/kafka/transport.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, uniqueName } from '../../helpers/kafka.ts'

// A broker of its own, to stop and start under a running consumer.
const kafka = new LocalKafka({
  name: 'test-outage',
  port: Number(process.env.CONVEYOR_TEST_OUTAGE_PORT ?? 29592),
  log: (line) => process.stderr.write(`[kafka test-outage] ${line}\n`)
})
let connection: KafkaConnection

before(async () => {
  await kafka.down({ purge: true })
  const info = await kafka.up()
  connection = {
    brokers: info.bootstrap,
    clientId: 'outage-test',
    connectTimeout: 2_000,
    requestTimeout: 5_000
  }
})
after(() => kafka.down({ purge: true }))

test('a consumer keeps going across a 30 s broker outage: it joins again by itself and nothing is lost', async (t) => {
  const topic = uniqueName('outage')
  const admin = new Admin(clientOptions(connection))
  await admin.createTopics({ topics: [topic], partitions: 2, replicas: 1 })
  await admin.close()
  const transport = new KafkaTransport({ connection, maxWaitTime: 200 })
  cleanup(t, () => transport.close())
  const publisher = transport.publisher()
  cleanup(t, () => publisher.close())
  const seen = new Set<number>()
  const errors: unknown[] = []
  const onError = (event: unknown) => errors.push(event)
  subscribe(Channels.error, onError)
  cleanup(t, () => unsubscribe(Channels.error, onError))
  const consumer = createConsumer({
    transport,
    groupId: uniqueName('group'),
    topics: [topic],
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    routes: { n: { handler: (m) => void seen.add((m.value as { i: number }).i) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  const send = (from: number, count: number) =>
    publisher.send(
      Array.from({ length: count }, (_, k) => ({
        topic,
        key: `k${from + k}`,
        value: JSON.stringify({ message_type: 'n', i: from + k })
      }))
    )
  await send(0, 50)
  await waitFor(() => seen.size === 50, { timeout: 30_000, description: 'the first 50' })

  await kafka.stopBroker(1)
  await new Promise((resolve) => setTimeout(resolve, 30_000)) // longer than the client retries: the consumer must join again by itself
  await kafka.startBroker(1)
  await waitFor(
    async () => {
      await send(50, 50)
      return true
    },
    { timeout: 60_000, description: 'producing again after the restart' }
  )
  await waitFor(() => seen.size >= 100, {
    timeout: 90_000,
    description: 'the messages produced after the restart'
  })
  assert.equal(consumer.state, 'running', `the consumer is still running (errors: ${errors.length})`)
  for (let i = 0; i < 100; i++) assert.ok(seen.has(i), `message ${i} handled`)
})
