import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ErrorCodes } from '../../../src/core/errors.ts'
import { loadConfig, resolveSecret } from '../../../src/service/config.ts'

function file(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'config-')), name)
  writeFileSync(path, text)
  return path
}

const base = `kafka:\n  brokers: [127.0.0.1:9092]\nconsumers:\n  - groupId: g\n    topics: [orders]\n    handlers: ./handlers.ts\n`

test('the file, then environment variables, then flags decide a setting', async () => {
  const path = file('service.yaml', `${base}http:\n  port: 9000\n`)
  const fromFile = await loadConfig({ file: path, env: {} })
  assert.equal(fromFile.config.http.port, 9000)
  assert.equal(fromFile.sources.get('http.port'), `file ${path}`)
  const fromEnv = await loadConfig({
    file: path,
    env: { CONVEYOR_HTTP_PORT: '9100', CONVEYOR_KAFKA_BROKERS: 'a:1,b:2' }
  })
  assert.equal(fromEnv.config.http.port, 9100)
  assert.deepEqual(fromEnv.config.kafka.brokers, ['a:1', 'b:2'])
  const fromFlag = await loadConfig({
    file: path,
    env: { CONVEYOR_HTTP_PORT: '9100' },
    flags: { port: '9200' }
  })
  assert.equal(fromFlag.config.http.port, 9200)
  assert.equal(fromFlag.sources.get('http.port'), 'flag --port')
})

test('a config error names the field and where its value came from', async () => {
  const bad = file('service.yaml', `${base}http:\n  port: 99999\n`)
  await assert.rejects(loadConfig({ file: bad, env: {} }), {
    code: ErrorCodes.INVALID_OPTION,
    message: `http.port (from file ${bad}): must be a port number (0–65535)`
  })
  const path = file('service.yaml', base)
  await assert.rejects(loadConfig({ file: path, env: { CONVEYOR_KAFKA_BROKERS: 'no-port' } }), {
    message: 'kafka.brokers (from env CONVEYOR_KAFKA_BROKERS): must list one or more host:port addresses'
  })
  await assert.rejects(loadConfig({ file: path, env: {}, flags: { 'log-level': 'loud' } }), {
    message: /^log\.level \(from flag --log-level\)/
  })
  const noConsumers = file('service.json', JSON.stringify({ kafka: { brokers: ['h:1'] } }))
  await assert.rejects(loadConfig({ file: noConsumers, env: {} }), {
    message: /^consumers \(from default\): declare at least one consumer/
  })
})

test('secrets come from the environment or a file, and their paths are redacted in logs', async () => {
  const secretFile = file('password', 's3cret-from-file\n')
  const loaded = await loadConfig({
    file: file(
      'service.yaml',
      `kafka:\n  brokers: [h:1]\n  sasl:\n    mechanism: SCRAM-SHA-512\n    username: svc\n    password: { file: ${secretFile} }\nconsumers:\n  - groupId: g\n    topics: [orders]\n    handlers: ./handlers.ts\n`
    ),
    env: {}
  })
  assert.equal(
    resolveSecret(loaded.config.kafka.sasl!.password, 'kafka.sasl.password', loaded.sources),
    's3cret-from-file'
  )
  assert.ok(loaded.secretPaths.includes('kafka.sasl.password'))
  process.env.CONVEYOR_TEST_SECRET = 'from-env'
  assert.equal(resolveSecret({ env: 'CONVEYOR_TEST_SECRET' }, 'x', loaded.sources), 'from-env')
  assert.throws(
    () => resolveSecret({ env: 'CONVEYOR_TEST_NO_SUCH_VAR' }, 'kafka.sasl.password', loaded.sources),
    {
      message: /kafka\.sasl\.password .*environment variable CONVEYOR_TEST_NO_SUCH_VAR is not set/
    }
  )
})
