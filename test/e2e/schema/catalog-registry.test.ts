import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { loadCatalog, registerCatalog, verifyCatalog } from '../../../src/schema/catalog.ts'
import { useRegistry } from '../../helpers/registry.ts'

function catalogOf(files: Record<string, unknown>) {
  const root = mkdtempSync(join(tmpdir(), 'catalog-'))
  for (const [path, schema] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true })
    writeFileSync(join(root, path), JSON.stringify(schema))
  }
  return loadCatalog(root)
}

const record = (fields: unknown[]) => ({ type: 'record', name: 'order_placed', fields })
const v1 = record([{ name: 'order', type: 'string' }])
const v2 = record([
  { name: 'order', type: 'string' },
  { name: 'channel', type: 'string', default: 'web' }
])

test('a service registers what it produces, every version in order, and verifies it can read what it consumes', async (t) => {
  const { client } = await useRegistry(t)
  const producer = catalogOf({ 'events/order_placed_v1.avsc': v1, 'events/order_placed_v2.avsc': v2 })
  const ids = await registerCatalog(client, producer, ['order_placed'])
  assert.deepEqual(await client.listVersions('order_placed'), [1, 2])
  assert.equal(ids.get('order_placed'), (await client.getVersion('order_placed', 2)).id)

  await verifyCatalog(client, producer, ['order_placed'])
  const strictReader = catalogOf({
    'events/order_placed_v1.avsc': record([
      { name: 'order', type: 'string' },
      { name: 'total', type: 'long' }
    ])
  })
  await assert.rejects(
    verifyCatalog(client, strictReader, ['order_placed']),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, ErrorCodes.INCOMPATIBLE_SCHEMA)
      assert.match(
        error.message,
        /cannot read version 1 of "order_placed": READER_FIELD_MISSING_DEFAULT_VALUE at \/fields\/1 \(total\)/
      )
      assert.match(error.message, /cannot read version 2/)
      return true
    }
  )
})
