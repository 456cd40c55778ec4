import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { main } from '../../../src/cli/main.ts'

function repo(files: Record<string, unknown>): string {
  const root = mkdtempSync(join(tmpdir(), 'catalog-'))
  for (const [path, schema] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true })
    writeFileSync(join(root, path), JSON.stringify(schema))
  }
  return root
}

async function check(...args: string[]) {
  const out: string[] = []
  const err: string[] = []
  const code = await main(['schemas', 'check', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) })
  return { code, out: out.join('\n'), err: err.join('\n') }
}

const record = (fields: unknown[]) => ({ type: 'record', name: 'order_placed', namespace: 'shop', fields })
const v1 = record([
  { name: 'message_type', type: 'string' },
  { name: 'order', type: 'string' }
])

test('`schemas check` passes a catalog whose new version is compatible', async () => {
  const dir = repo({
    'events/order_placed_v1.avsc': v1,
    'events/order_placed_v2.avsc': record([
      { name: 'message_type', type: 'string' },
      { name: 'order', type: 'string' },
      { name: 'channel', type: 'string', default: 'web' }
    ])
  })
  const result = await check('--dir', dir)
  assert.equal(result.code, 0)
  assert.match(result.out, /2 schemas of 1 message types are compatible at BACKWARD/)
})

test('`schemas check` fails on a breaking change and prints each problem with its file', async () => {
  const dir = repo({
    'events/order_placed_v1.avsc': v1,
    'events/order_placed_v2.avsc': record([
      { name: 'message_type', type: 'string' },
      { name: 'order', type: 'long' },
      { name: 'channel', type: 'string' }
    ])
  })
  const result = await check('--dir', dir)
  assert.equal(result.code, 1)
  const lines = result.out.split('\n')
  assert.equal(lines.length, 2, 'both problems')
  assert.match(lines[0]!, /order_placed_v2\.avsc: .*TYPE_MISMATCH.*\/fields\/1\/type/)
  assert.match(lines[1]!, /order_placed_v2\.avsc: .*READER_FIELD_MISSING_DEFAULT_VALUE.*'channel'/)
  assert.equal((await check('--dir', dir, '--level', 'NONE')).code, 0, 'NONE accepts it')
})

test('`schemas check` wants versions without gaps and files named <message_type>_v<version>.avsc', async () => {
  const gap = await check(
    '--dir',
    repo({ 'commands/order_placed_v1.avsc': v1, 'commands/order_placed_v3.avsc': v1 })
  )
  assert.equal(gap.code, 1)
  assert.match(gap.out, /expected version 2, found 3/)
  const badName = await check('--dir', repo({ 'commands/OrderPlaced.avsc': v1 }))
  assert.equal(badName.code, 1)
  assert.match(badName.err, /schema files are named <message_type>_v<version>\.avsc/)
})

test('the catalog shipped in schemas/ passes its own check', async () => {
  const result = await check('--dir', new URL('../../../schemas', import.meta.url).pathname)
  assert.equal(result.code, 0, result.out)
})
