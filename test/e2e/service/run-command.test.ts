import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { waitFor } from '../../../src/util/wait.ts'
import {
  cleanup,
  readAll,
  saslConnection,
  testConnection,
  uniqueName,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'
import { configFile, handlersModule, startService } from '../../helpers/service.ts'

const sasl = saslConnection()
const cli = new URL('../../../bin/conveyor.ts', import.meta.url).pathname

test('`conveyor run -c` handles messages over SASL_SSL, counts them in /metrics, never logs the password, and exits 0 on SIGTERM', {
  skip: sasl ? false : 'no SASL listener'
}, async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const handled = join(mkdtempSync(join(tmpdir(), 'handled-')), 'handled.log')
  const password = sasl!.sasl!.password
  const config = configFile(
    [
      'kafka:',
      `  brokers: [${sasl!.brokers.join(', ')}]`,
      '  sasl:',
      '    mechanism: SCRAM-SHA-512',
      `    username: ${sasl!.sasl!.username}`,
      `    password: "${password}"`,
      `  tls: { caFile: "${(sasl!.tls as { caFile: string }).caFile}" }`,
      'http: { port: 0, host: 127.0.0.1 }',
      'log: { level: debug }',
      'consumers:',
      `  - groupId: ${uniqueName('service')}`,
      `    topics: [${topic}]`,
      `    handlers: ${handlersModule}`
    ].join('\n')
  )
  const service = await startService(t, config, { HANDLED_LOG: handled })
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  await publisher.send(
    Array.from({ length: 10 }, (_, i) => ({
      topic,
      key: `k${i}`,
      value: JSON.stringify({ message_type: 'n' })
    }))
  )
  await waitFor(
    () => {
      try {
        return readFileSync(handled, 'utf8').trim().split('\n').length === 10
      } catch {
        return false
      }
    },
    { timeout: 30_000, description: 'the service to handle 10 messages' }
  )
  const metrics = await (await fetch(`${service.url}/metrics`)).text()
  assert.match(
    metrics,
    new RegExp(`conveyor_messages_total\\{topic="${topic}",type="n",outcome="processed"\\} 10`)
  )
  assert.equal((await fetch(`${service.url}/health/live`)).status, 200)
  await waitFor(async () => (await fetch(`${service.url}/health/ready`)).status === 200, {
    timeout: 20_000,
    description: 'ready'
  })

  service.child.kill('SIGTERM')
  assert.equal(await service.exited, 0, service.output())
  const logs = service.output()
  assert.match(logs, /"msg":"message processed"/, 'JSON log lines, one per message')
  assert.equal(logs.includes(password), false, 'the password never appears in the logs')
})

test('`conveyor run` with a bad config exits 1 with a one-line reason naming the field', async () => {
  const config = configFile('kafka:\n  brokers: [nowhere]\nconsumers: []\n')
  const result = await promisify(execFile)(process.execPath, [cli, 'run', '-c', config]).catch(
    (error) => error
  )
  assert.equal(result.code, 1)
  assert.equal(
    result.stderr.trim(),
    `conveyor run: kafka.brokers (from file ${config}): must list one or more host:port addresses`
  )
})

test('handlers of a `conveyor run` service produce through context.send, and what they send names the handled message as its cause', async (t) => {
  const input = await useTopic(t)
  const output = await useTopic(t)
  const config = configFile(
    [
      `kafka: { brokers: [${testConnection().brokers.join(', ')}] }`,
      'http: { port: 0, host: 127.0.0.1 }',
      'producer: { compression: lz4, source: "urn:test:forwarder" }',
      `consumers: [{ groupId: ${uniqueName('fwd')}, topics: [${input}], handlers: ${handlersModule} }]`
    ].join('\n')
  )
  const service = await startService(t, config, { FORWARD_TOPIC: output })
  const publisher = useTransport(t).publisher()
  cleanup(t, () => publisher.close())
  const [position] = await publisher.send([
    { topic: input, key: 'in', value: JSON.stringify({ message_type: 'forward' }) }
  ])
  const [forwarded] = await readAll(t, output, 1)
  assert.deepEqual(JSON.parse(forwarded!.value!.toString()), { message_type: 'forwarded', ok: true })
  assert.equal(
    forwarded!.headers.get('ce_causationid')?.toString(),
    `${input}-${position!.partition}-${position!.offset}`
  )
  assert.equal(forwarded!.headers.get('ce_source')?.toString(), 'urn:test:forwarder')
  service.child.kill('SIGTERM')
  assert.equal(await service.exited, 0)
})
