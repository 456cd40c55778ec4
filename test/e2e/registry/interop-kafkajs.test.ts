/** Interoperability with @kafkajs/confluent-schema-registry, a registry client no one here wrote. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { AvroCodec } from '../../../src/schema/avro-codec.ts'
import { SchemaRegistryClient } from '../../../src/schema/registry-client.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, useGroup, useTopic, useTransport } from '../../helpers/kafka.ts'
import { useRegistry } from '../../helpers/registry.ts'

const schema = {
  type: 'record',
  name: 'Observation',
  namespace: 'interop.kafkajs',
  fields: [
    { name: 'message_type', type: 'string' },
    { name: 'selector', type: { type: 'map', values: 'string' } }
  ]
}

test("@kafkajs/confluent-schema-registry registers, encodes and decodes against Conveyor's registry, and Conveyor reads its bytes", async (t) => {
  const { url, client } = await useRegistry(t)
  const theirs = new SchemaRegistry({ host: url })
  const { id } = await theirs.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
    { subject: 'observation-value' }
  )
  assert.equal(id, 1)
  assert.equal(await theirs.getLatestSchemaId('observation-value'), id)
  const value = { message_type: 'update_status', selector: { ref_id: 'AC-1' } }
  const encoded = await theirs.encode(id, value)
  assert.deepEqual(
    { ...(await theirs.decode(encoded)) },
    value,
    'their client decodes its own bytes through our registry'
  )
  assert.equal((await client.getById(id)).schema, JSON.stringify(schema))

  const topic = await useTopic(t)
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  await publisher.send([{ topic, key: 'k', value: encoded }])
  const seen: unknown[] = []
  const consumer = createConsumer({
    transport: useTransport(t),
    groupId: useGroup(t),
    topics: [topic],
    codec: new AvroCodec({ registry: new SchemaRegistryClient({ url }) }),
    routes: { update_status: { handler: (m) => void seen.push({ ...(m.value as object) }) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(() => seen.length === 1, { timeout: 20_000 })
  assert.deepEqual(seen, [value])

  const ours = new AvroCodec({
    registry: new SchemaRegistryClient({ url }),
    schemas: { update_status: schema }
  })
  const ourBytes = await ours.encode(value, { topic: 'observation', type: 'update_status' })
  assert.deepEqual({ ...(await theirs.decode(ourBytes)) }, value, 'their client decodes our bytes')
})
