import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { ErrorCodes } from '../../src/core/errors.ts'

const root = new URL('../../', import.meta.url)

test('every error code is documented in docs/errors.md', () => {
  const doc = readFileSync(new URL('docs/errors.md', root), 'utf8')
  const missing = Object.values(ErrorCodes).filter((code) => !doc.includes(`\`${code}\``))
  assert.deepEqual(missing, [])
})

test('every path the package exports exists and loads', async () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
    exports: Record<string, string>
  }
  for (const [name, path] of Object.entries(pkg.exports)) {
    const module = await import(new URL(path, root).href)
    assert.ok(Object.keys(module).length > 0, `${name} exports something`)
  }
  const main = await import(new URL(pkg.exports['.']!, root).href)
  for (const name of [
    'createConsumer',
    'createProducer',
    'KafkaTransport',
    'bounded',
    'forever',
    'NonRetryableError'
  ]) {
    assert.equal(typeof main[name], 'function', `conveyor exports ${name}`)
  }
})
