import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { DeadLetterHeaders } from '../../../src/dead-letter/record.ts'
import { createProducer } from '../../../src/producer/producer.ts'
import { EmbeddedRegistry } from '../../../src/registry/registry.ts'
import { AvroCodec } from '../../../src/schema/avro-codec.ts'
import { SchemaRegistryClient } from '../../../src/schema/registry-client.ts'
import { frame } from '../../../src/schema/wire.ts'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  readAll,
  testConnection,
  uniqueName,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'
import { useRegistry } from '../../helpers/registry.ts'

const commandV1 = {
  type: 'record',
  name: 'update_status',
  namespace: 'conveyor.commands',
  fields: [
    { name: 'message_type', type: 'string' },
    { name: 'version', type: 'int' },
    { name: 'status', type: 'string' }
  ]
}
const commandV2 = {
  ...commandV1,
  fields: [...commandV1.fields, { name: 'comment', type: 'string', default: 'none' }]
}

test("a message written with v1 of a schema reaches a v2 handler with the new field's default", async (t) => {
  const { url } = await useRegistry(t)
  const topic = await useTopic(t)
  const transport = useTransport(t)
  const producer = createProducer({
    transport,
    topic,
    codec: new AvroCodec({
      registry: new SchemaRegistryClient({ url }),
      schemas: { update_status: commandV1 }
    })
  })
  cleanup(t, () => producer.close())
  await producer.send(
    'update_status',
    { message_type: 'update_status', version: 1, status: 'done' },
    { key: 'c-1' }
  )

  const seen: unknown[] = []
  const consumer = createConsumer({
    transport,
    groupId: useGroup(t),
    topics: [topic],
    codec: new AvroCodec({
      registry: new SchemaRegistryClient({ url }),
      schemas: { update_status: commandV2 }
    }),
    routes: { update_status: { handler: (m) => void seen.push({ ...(m.value as object) }) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(() => seen.length === 1, { timeout: 20_000 })
  assert.deepEqual(seen, [{ message_type: 'update_status', version: 1, status: 'done', comment: 'none' }])
})

test('Avro payloads of any size arrive intact, a large one (150 KB) between small ones', async (t) => {
  const { url } = await useRegistry(t)
  const topic = await useTopic(t)
  const transport = useTransport(t)
  const codec = () =>
    new AvroCodec({ registry: new SchemaRegistryClient({ url }), schemas: { update_status: commandV1 } })
  const producer = createProducer({ transport, topic, codec: codec() })
  cleanup(t, () => producer.close())
  const statuses = ['first', 'x'.repeat(150_000), 'after the large one', 'é€'.repeat(40_000), 'last']
  await producer.sendMany(
    statuses.map((status) => ({
      type: 'update_status' as const,
      payload: { message_type: 'update_status', version: 1, status },
      key: 'one-key'
    }))
  )

  const seen: string[] = []
  const consumer = createConsumer({
    transport,
    groupId: useGroup(t),
    topics: [topic],
    codec: codec(),
    routes: { update_status: { handler: (m) => void seen.push((m.value as { status: string }).status) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(() => seen.length === statuses.length, { timeout: 20_000 })
  assert.deepEqual(
    seen.map((s) => s.length),
    statuses.map((s) => s.length)
  )
  assert.deepEqual(seen, statuses)
})

test('an unknown schema id and a value without the wire format go to the DLQ with their reason', async (t) => {
  const { url } = await useRegistry(t)
  const topic = await useTopic(t)
  const raw = useProducer(t)
  await raw.send({
    messages: [{ topic, key: 'a', value: frame(424_242, Buffer.from([2, 4])).toString('latin1') }]
  })
  await raw.send({ messages: [{ topic, key: 'b', value: '{"message_type":"update_status"}' }] })
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId: useGroup(t),
    topics: [topic],
    codec: new AvroCodec({ registry: new SchemaRegistryClient({ url }) }),
    routes: { update_status: { handler: () => {} } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  const dead = await readAll(t, `${topic}.dlq`, 2)
  assert.deepEqual(
    dead.map((r) => r.headers.get(DeadLetterHeaders.reason)?.toString()),
    ['unknown_schema_id', 'bad_magic_byte']
  )
})

test('while the registry is down, Avro messages wait; once it is back they are handled and nothing goes to the DLQ', async (t) => {
  const storage = uniqueName('_schemas')
  const first = new EmbeddedRegistry({ connection: testConnection(), topic: storage, port: 0 })
  const url = await first.start()
  const port = Number(new URL(url).port)
  const topic = await useTopic(t)
  const transport = useTransport(t)
  const producer = createProducer({
    transport,
    topic,
    codec: new AvroCodec({
      registry: new SchemaRegistryClient({ url }),
      schemas: { update_status: commandV1 }
    })
  })
  cleanup(t, () => producer.close())
  await producer.send('update_status', { message_type: 'update_status', version: 1, status: 'queued' })
  await first.stop()

  const seen: string[] = []
  const consumer = createConsumer({
    transport,
    groupId: useGroup(t),
    topics: [topic],
    codec: new AvroCodec({ registry: new SchemaRegistryClient({ url, retries: 0, timeout: 1_000 }) }),
    routes: { update_status: { handler: (m) => void seen.push((m.value as { status: string }).status) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await new Promise((resolve) => setTimeout(resolve, 1_500)) // the consumer meets the registry down
  assert.deepEqual(seen, [], 'nothing handled while the registry is down')

  const second = new EmbeddedRegistry({ connection: testConnection(), topic: storage, port })
  await second.start()
  cleanup(t, () => second.stop())
  await waitFor(() => seen.length === 1, {
    timeout: 30_000,
    description: 'the message after the registry came back'
  })
  assert.deepEqual(seen, ['queued'])
  const dlq = await recordCount(t, `${topic}.dlq`)
  assert.equal(dlq, 0, 'nothing dead-lettered')
})

async function recordCount(t: Parameters<typeof useTopic>[0], topic: string): Promise<number> {
  const { Consumer } = await import('@platformatic/kafka')
  const consumer = new Consumer({
    clientId: 'count',
    bootstrapBrokers: testConnection().brokers,
    groupId: uniqueName('count')
  })
  cleanup(t, () => consumer.close(true))
  const offsets = await consumer.listOffsets({ topics: [topic] })
  return Number(offsets.get(topic)?.[0] ?? 0n)
}
