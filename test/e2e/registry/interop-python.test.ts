/**
 * Interoperability with a client no one here wrote: Confluent's Python client
 * (Debian's python3-confluent-kafka, with python3-avro and python3-requests).
 */
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { createProducer } from '../../../src/producer/producer.ts'
import { AvroCodec } from '../../../src/schema/avro-codec.ts'
import { SchemaRegistryClient } from '../../../src/schema/registry-client.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, testConnection, useGroup, useTopic, useTransport } from '../../helpers/kafka.ts'
import { useRegistry } from '../../helpers/registry.ts'

const run = promisify(execFile)
const python = '/usr/bin/python3'
const script = new URL('../../fixtures/python_interop.py', import.meta.url).pathname
const available =
  spawnSync(python, ['-c', 'import confluent_kafka.avro, confluent_kafka.schema_registry'], {
    stdio: 'ignore'
  }).status === 0
const skip = available
  ? false
  : 'python3-confluent-kafka, python3-avro and python3-requests are not installed (.ci/run installs them)'

const readingSchema = {
  type: 'record',
  name: 'Reading',
  namespace: 'interop.python',
  fields: [
    { name: 'message_type', type: 'string' },
    { name: 'sensor', type: 'string' },
    { name: 'value', type: 'double' },
    { name: 'tags', type: { type: 'array', items: 'string' }, default: [] }
  ]
}

test("Confluent's Python client registers and produces Avro through Conveyor's registry, and Conveyor consumes it", {
  skip
}, async (t) => {
  const { url, client } = await useRegistry(t)
  const topic = await useTopic(t)
  await run(python, [script, 'produce', testConnection().brokers.join(','), url, topic, '5'], {
    timeout: 60_000
  })
  assert.deepEqual(
    await client.listSubjects(),
    [`${topic}-value`],
    'the Python client registered the subject'
  )

  const seen: Array<Record<string, unknown>> = []
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId: useGroup(t),
    topics: [topic],
    codec: new AvroCodec({ registry: new SchemaRegistryClient({ url }) }),
    routes: { reading: { handler: (m) => void seen.push({ ...(m.value as object) }) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(() => seen.length === 5, { timeout: 30_000 })
  assert.deepEqual(seen[2], { message_type: 'reading', sensor: 's2', value: 3, tags: ['py', '2'] })
})

test("Conveyor produces Avro that Confluent's Python client decodes through Conveyor's registry", {
  skip
}, async (t) => {
  const { url } = await useRegistry(t)
  const topic = await useTopic(t)
  const producer = createProducer({
    transport: useTransport(t),
    topic,
    codec: new AvroCodec({ registry: new SchemaRegistryClient({ url }), schemas: { reading: readingSchema } })
  })
  cleanup(t, () => producer.close())
  for (let i = 0; i < 3; i++) {
    await producer.send('reading', {
      message_type: 'reading',
      sensor: `n${i}`,
      value: i + 0.25,
      tags: ['node']
    })
  }
  const { stdout } = await run(
    python,
    [script, 'consume', testConnection().brokers.join(','), url, topic, '3'],
    { timeout: 90_000 }
  )
  const values = stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
  assert.deepEqual(values[1], { message_type: 'reading', sensor: 'n1', tags: ['node'], value: 1.25 })
})

test("Confluent's Python registry client registers and reads back versions on Conveyor's registry", {
  skip
}, async (t) => {
  const { url } = await useRegistry(t)
  const { stdout } = await run(
    python,
    [script, 'register', url, 'py-subject', JSON.stringify(readingSchema)],
    { timeout: 30_000 }
  )
  assert.deepEqual(JSON.parse(stdout), { id: 1, version: 1, same: true })
})
