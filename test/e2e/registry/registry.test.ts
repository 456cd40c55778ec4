import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { EmbeddedRegistry } from '../../../src/registry/registry.ts'
import { SchemaRegistryClient } from '../../../src/schema/registry-client.ts'
import { readAll, testConnection } from '../../helpers/kafka.ts'
import { useRegistry } from '../../helpers/registry.ts'

const v1 = JSON.stringify({
  type: 'record',
  name: 'Command',
  namespace: 'conveyor.test',
  fields: [
    { name: 'message_type', type: 'string' },
    { name: 'version', type: 'int' }
  ]
})
const v2 = JSON.stringify({
  type: 'record',
  name: 'Command',
  namespace: 'conveyor.test',
  fields: [
    { name: 'message_type', type: 'string' },
    { name: 'version', type: 'int' },
    { name: 'priority', type: 'int', default: 5 }
  ]
})
const breaking = JSON.stringify({
  type: 'record',
  name: 'Command',
  namespace: 'conveyor.test',
  fields: [
    { name: 'message_type', type: 'string' },
    { name: 'owner', type: 'string' }
  ]
})

test('a registered schema comes back by id, by subject and version, and by lookup; the same schema keeps its id', async (t) => {
  const { client } = await useRegistry(t)
  const id = await client.register('commands-value', { schema: v1 })
  assert.equal(
    await client.register('commands-value', { schema: ` ${v1} ` }),
    id,
    'registering it again (any whitespace) gives the same id'
  )
  assert.equal((await client.getById(id)).schema, v1)
  const latest = await client.getVersion('commands-value', 'latest')
  assert.deepEqual(
    { subject: latest.subject, version: latest.version, id: latest.id },
    { subject: 'commands-value', version: 1, id }
  )
  assert.equal((await client.lookup('commands-value', { schema: v1 })).version, 1)
  assert.equal(
    await client.register('other-value', { schema: v1 }),
    id,
    'the same schema under another subject keeps its id'
  )
  const id2 = await client.register('commands-value', { schema: v2 })
  assert.equal(id2, id + 1)
  assert.deepEqual(await client.listVersions('commands-value'), [1, 2])
  assert.deepEqual(await client.listSubjects(), ['commands-value', 'other-value'])
  await assert.rejects(client.getById(9_999), { errorCode: 40403, status: 404 })
  await assert.rejects(client.getVersion('nope', 1), { errorCode: 40401 })
  await assert.rejects(client.getVersion('commands-value', 7), { errorCode: 40402 })
})

test("an incompatible schema is refused with 409 and every problem, at the subject's level", async (t) => {
  const { client } = await useRegistry(t)
  await client.register('commands-value', { schema: v1 })
  const check = await client.checkCompatibility('commands-value', { schema: breaking })
  assert.equal(check.compatible, false)
  assert.match(check.messages.join('\n'), /READER_FIELD_MISSING_DEFAULT_VALUE.*'owner'/)
  await assert.rejects(
    client.register('commands-value', { schema: breaking }),
    (error: Error & Record<string, unknown>) => {
      assert.equal(error.code, ErrorCodes.INCOMPATIBLE_SCHEMA)
      assert.equal(error.status, 409)
      return true
    }
  )
  assert.equal(await client.getCompatibility('commands-value'), 'BACKWARD', 'BACKWARD by default')
  await client.setCompatibility('NONE', 'commands-value')
  assert.equal(await client.getCompatibility('commands-value'), 'NONE')
  assert.equal(
    (await client.register('commands-value', { schema: breaking })) > 0,
    true,
    'accepted once the subject says NONE'
  )
  await assert.rejects(client.register('commands-value', { schema: '{"type": "record", "name": 1}' }), {
    errorCode: 42201
  })
})

test('a restarted registry rebuilds every subject, version, id and config from its topic, stored as Confluent stores it', async (t) => {
  const { registry, client, topic } = await useRegistry(t)
  const id1 = await client.register('a-value', { schema: v1 })
  const id2 = await client.register('a-value', { schema: v2 })
  await client.setCompatibility('FULL', 'a-value')
  await client.setCompatibility('FORWARD')
  await registry.stop()

  const records = await readAll(t, topic, 4)
  const keys = records.map((r) => r.key?.toString())
  assert.equal(keys[0], '{"keytype":"SCHEMA","subject":"a-value","version":1,"magic":1}')
  assert.deepEqual(JSON.parse(records[0]!.value!.toString()), {
    subject: 'a-value',
    version: 1,
    id: id1,
    schema: v1,
    deleted: false
  })
  assert.equal(keys[2], '{"keytype":"CONFIG","subject":"a-value","magic":0}')
  assert.equal(keys[3], '{"keytype":"CONFIG","subject":null,"magic":0}')
  assert.deepEqual(JSON.parse(records[3]!.value!.toString()), { compatibilityLevel: 'FORWARD' })

  const again = new EmbeddedRegistry({ connection: testConnection(), topic, port: 0 })
  const url = await again.start()
  t.after(() => again.stop())
  const client2 = new SchemaRegistryClient({ url })
  assert.deepEqual(await client2.listVersions('a-value'), [1, 2])
  assert.equal((await client2.getVersion('a-value', 2)).id, id2)
  assert.equal((await client2.getById(id1)).schema, v1)
  assert.equal(await client2.getCompatibility('a-value'), 'FULL')
  assert.equal(await client2.getCompatibility(), 'FORWARD')
  assert.equal(
    await client2.register('b-value', {
      schema: JSON.stringify({ type: 'enum', name: 'E', symbols: ['A'] })
    }),
    id2 + 1,
    'ids go on from the highest'
  )
})

test('a soft-deleted subject disappears, can be listed with deleted=true, and is then deleted for good', async (t) => {
  const { url, client } = await useRegistry(t)
  await client.register('gone-value', { schema: v1 })
  const call = async (method: string, path: string) => {
    const response = await fetch(`${url}/${path}`, { method })
    return { status: response.status, body: await response.json() }
  }
  assert.deepEqual((await call('DELETE', 'subjects/gone-value')).body, [1])
  assert.deepEqual(await client.listSubjects(), [])
  assert.deepEqual((await call('GET', 'subjects?deleted=true')).body, ['gone-value'])
  assert.deepEqual((await call('DELETE', 'subjects/gone-value?permanent=true')).body, [1])
  assert.deepEqual((await call('GET', 'subjects?deleted=true')).body, [])
  assert.equal((await call('GET', 'schemas/types')).status, 200)
})

test('with normalize=true, schemas that differ only in namespace spelling, attribute order or whitespace are one version', async (t) => {
  const { url } = await useRegistry(t)
  const post = async (path: string, schema: string) => {
    const response = await fetch(`${url}/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ schema })
    })
    return (await response.json()) as Record<string, unknown>
  }
  const spelledOut = JSON.stringify({
    type: 'record',
    namespace: 'shop',
    name: 'Order',
    fields: [{ name: 'id', type: { type: 'string' } }]
  })
  const compact = JSON.stringify({
    name: 'shop.Order',
    fields: [{ type: 'string', name: 'id' }],
    type: 'record'
  })
  const first = await post('subjects/orders-value/versions?normalize=true', spelledOut)
  const second = await post('subjects/orders-value/versions?normalize=true', compact)
  assert.equal(second.id, first.id, 'the same schema once normalized')
  assert.equal((await post('subjects/orders-value?normalize=true', compact)).version, 1, 'lookup finds it')
  const third = await post('subjects/orders-value/versions', compact)
  assert.notEqual(third.id, first.id, 'without normalize the spelling counts')
})

test("a schema may reference another subject's schema; the referenced version knows who refers to it", async (t) => {
  const { url, client } = await useRegistry(t)
  const address = JSON.stringify({
    type: 'record',
    name: 'Address',
    namespace: 'shop',
    fields: [{ name: 'city', type: 'string' }]
  })
  const addressId = await client.register('shop.Address', { schema: address })
  const customer = JSON.stringify({
    type: 'record',
    name: 'Customer',
    namespace: 'shop',
    fields: [{ name: 'home', type: 'shop.Address' }]
  })
  const references = [{ name: 'shop.Address', subject: 'shop.Address', version: 1 }]
  const customerId = await client.register('customers-value', { schema: customer, references })
  const fetched = await client.getById(customerId)
  assert.deepEqual(fetched.references, references)
  const get = async (path: string) => (await fetch(`${url}/${path}`)).json()
  assert.deepEqual(await get('subjects/shop.Address/versions/1/referencedby'), [customerId])
  assert.deepEqual(await get(`schemas/ids/${addressId}/subjects`), ['shop.Address'])
  assert.deepEqual(await get(`schemas/ids/${customerId}/versions`), [
    { subject: 'customers-value', version: 1 }
  ])
  await assert.rejects(
    client.register('broken-value', { schema: customer }),
    { errorCode: 42201 },
    'without the reference the type is unknown'
  )
})

test('a version can be soft-deleted and then deleted for good, and ids stay unique after it', async (t) => {
  const { url, client } = await useRegistry(t)
  await client.setCompatibility('NONE')
  const first = await client.register('v-value', { schema: v1 })
  await client.register('v-value', { schema: v2 })
  const del = (path: string) =>
    fetch(`${url}/${path}`, { method: 'DELETE' }).then(async (r) => [r.status, await r.json()])
  assert.deepEqual(await del('subjects/v-value/versions/1'), [200, 1])
  assert.deepEqual(await client.listVersions('v-value'), [2])
  assert.deepEqual(
    (await del('subjects/v-value/versions/2?permanent=true'))[0],
    404,
    'a live version is soft-deleted first'
  )
  assert.deepEqual(await del('subjects/v-value/versions/1?permanent=true'), [200, 1])
  const third = await client.register('v-value', { schema: breaking })
  assert.ok(third > first, 'a new schema gets a new id')
  assert.deepEqual(await client.listVersions('v-value'), [2, 3])
})
