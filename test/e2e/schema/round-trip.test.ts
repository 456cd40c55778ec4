import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AvroCodec } from '../../../src/schema/avro-codec.ts'
import { JsonSchemaCodec } from '../../../src/schema/json-schema-codec.ts'
import { SchemaRegistryClient } from '../../../src/schema/registry-client.ts'
import { cleanup, readAll, useTopic, useTransport } from '../../helpers/kafka.ts'
import { useRegistry } from '../../helpers/registry.ts'

const keySchema = {
  type: 'record',
  name: 'Key',
  namespace: 'conveyor.test',
  fields: [
    { name: 'tenant', type: 'string' },
    { name: 'id', type: 'long' }
  ]
}
const valueSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  properties: { message_type: { const: 'observed' }, level: { type: 'integer', minimum: 0 } },
  required: ['message_type', 'level'],
  additionalProperties: false
}

test('keys in Avro and values in JSON Schema round-trip through Kafka and the embedded registry, each under its subject', async (t) => {
  const { url, client } = await useRegistry(t)
  const registry = new SchemaRegistryClient({ url })
  const keys = new AvroCodec({ registry, target: 'key', schemas: { key: keySchema } })
  const values = new JsonSchemaCodec({ registry, schemas: { observed: valueSchema } })
  const topic = await useTopic(t)
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  const key = { tenant: 'acme', id: 42 }
  const value = { message_type: 'observed', level: 3 }
  await publisher.send([
    {
      topic,
      key: await keys.encode(key, { topic, type: 'key' }),
      value: await values.encode(value, { topic, type: 'observed' })
    }
  ])
  assert.deepEqual(await client.listSubjects(), [`${topic}-key`, `${topic}-value`])
  assert.equal((await client.getVersion(`${topic}-value`, 1)).schemaType, 'JSON')

  const [record] = await readAll(t, topic, 1)
  const reader = new SchemaRegistryClient({ url })
  assert.deepEqual({ ...((await new AvroCodec({ registry: reader }).decode(record!.key!)) as object) }, key)
  assert.deepEqual(await new JsonSchemaCodec({ registry: reader }).decode(record!.value!), value)
})

test('a payload that does not match its schema is refused before anything is sent, naming the field', async (t) => {
  const { url, client } = await useRegistry(t)
  const registry = new SchemaRegistryClient({ url })
  const avro = new AvroCodec({ registry, schemas: { key: keySchema } })
  await assert.rejects(
    async () => avro.encode({ tenant: 'acme', id: 'not a number' }, { topic: 't', type: 'key' }),
    {
      path: 'id'
    }
  )
  const json = new JsonSchemaCodec({ registry, schemas: { observed: valueSchema } })
  await assert.rejects(
    json.encode({ message_type: 'observed', level: -1 }, { topic: 't', type: 'observed' }),
    { path: '/level' }
  )
  assert.deepEqual(await client.listSubjects(), [], 'nothing was registered')
})

test('a JSON Schema value that does not match its writer schema is a decode error with reason schema_validation', async (t) => {
  const { url } = await useRegistry(t)
  const registry = new SchemaRegistryClient({ url })
  const id = await registry.register('x-value', { schema: JSON.stringify(valueSchema), schemaType: 'JSON' })
  const { frame } = await import('../../../src/schema/wire.ts')
  await assert.rejects(
    new JsonSchemaCodec({ registry }).decode(frame(id, Buffer.from('{"message_type":"observed"}'))),
    {
      reason: 'schema_validation'
    }
  )
})

test("the record and topic-record strategies name subjects after the record's full name", async (t) => {
  const { url, client } = await useRegistry(t)
  const registry = new SchemaRegistryClient({ url })
  await new AvroCodec({ registry, subjectNameStrategy: 'record', schemas: { key: keySchema } }).encode(
    { tenant: 'a', id: 1 },
    { topic: 'orders', type: 'key' }
  )
  await new AvroCodec({ registry, subjectNameStrategy: 'topic-record', schemas: { key: keySchema } }).encode(
    { tenant: 'a', id: 1 },
    { topic: 'orders', type: 'key' }
  )
  assert.deepEqual(await client.listSubjects(), ['conveyor.test.Key', 'orders-conveyor.test.Key'])
})
