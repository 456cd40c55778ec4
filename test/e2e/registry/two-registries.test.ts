import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EmbeddedRegistry } from '../../../src/registry/registry.ts'
import { SchemaRegistryClient } from '../../../src/schema/registry-client.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, testConnection, uniqueName } from '../../helpers/kafka.ts'

const enumSchema = (i: number) => JSON.stringify({ type: 'enum', name: `E${i}`, symbols: ['A', `S${i}`] })
const recordVersion = (i: number) =>
  JSON.stringify({
    type: 'record',
    name: 'Grows',
    fields: [
      { name: 'f0', type: 'int' },
      ...Array.from({ length: i }, (_, n) => ({ name: `f${n + 1}`, type: 'int', default: 0 }))
    ]
  })

test('two registry processes on one topic elect one writer: concurrent registrations through both get unique ids and versions', async (t) => {
  const topic = uniqueName('_schemas')
  const a = new EmbeddedRegistry({ connection: testConnection(), topic, port: 0 })
  const b = new EmbeddedRegistry({ connection: testConnection(), topic, port: 0 })
  cleanup(t, () => a.stop())
  cleanup(t, () => b.stop())
  const [urlA, urlB] = await Promise.all([a.start(), b.start()])
  await waitFor(() => a.isLeader !== b.isLeader, { timeout: 30_000, description: 'exactly one leader' })

  const clients = [new SchemaRegistryClient({ url: urlA }), new SchemaRegistryClient({ url: urlB })]
  // Distinct schemas under distinct subjects, half through each process, all at once.
  const ids = await Promise.all(
    Array.from({ length: 16 }, (_, i) => clients[i % 2]!.register(`s${i}-value`, { schema: enumSchema(i) }))
  )
  assert.equal(new Set(ids).size, 16, `every schema got its own id: ${ids.join(',')}`)
  // Successive versions of one subject through alternating processes.
  for (let i = 0; i < 6; i++) await clients[i % 2]!.register('grows-value', { schema: recordVersion(i) })
  for (const client of clients) assert.deepEqual(await client.listVersions('grows-value'), [1, 2, 3, 4, 5, 6])

  await waitFor(() => a.store.maxId === b.store.maxId && a.store.maxId === 22, {
    timeout: 10_000,
    description: 'both processes to agree'
  })
  const leader = a.isLeader ? a : b
  const follower = a.isLeader ? b : a
  assert.deepEqual(
    [...follower.store.schemasById.keys()].sort((x, y) => x - y),
    [...leader.store.schemasById.keys()].sort((x, y) => x - y)
  )
})
