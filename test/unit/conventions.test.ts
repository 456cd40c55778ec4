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

test('every path the package exports is built from a source that loads, with its types beside it', async () => {
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
    exports: Record<string, string | { types: string; default: string }>
  }
  const sources: Record<string, string> = {}
  for (const [name, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue // ./package.json
    // The build (tsconfig.build.json) writes src/x.ts to dist/src/x.js and dist/src/x.d.ts.
    assert.match(target.default, /^\.\/dist\/src\/.+\.js$/, name)
    assert.equal(target.types, target.default.replace(/\.js$/, '.d.ts'), name)
    const source = target.default.replace(/^\.\/dist\//, './').replace(/\.js$/, '.ts')
    const module = await import(new URL(source, root).href)
    assert.ok(Object.keys(module).length > 0, `${name} exports something`)
    sources[name] = source
  }
  assert.deepEqual(Object.keys(sources), ['.', './testing', './otel'])
  const main = await import(new URL(sources['.']!, root).href)
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
