/**
 * The dispatcher as an operator runs it: start-up errors as one line and exit 1, a stop
 * that does not sit out the drain timeout, one JSON log stream, call retries counted.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { waitFor } from '../../../src/util/wait.ts'
import { conveyor } from '../../helpers/cli.ts'
import { useDispatcher } from '../../helpers/dispatcher.ts'
import {
  committedOffsets,
  deleteTopicsAtEnd,
  testConnection,
  useGroup,
  useProducer,
  useTopic
} from '../../helpers/kafka.ts'
import { configFile, handlersModule, startService } from '../../helpers/service.ts'

function dispatcherConfig(extra: string[] = []): string {
  return configFile(
    [
      `kafka: { brokers: [${testConnection().brokers.join(', ')}] }`,
      'http: { host: 127.0.0.1 }',
      'log: { level: info }',
      'api: { url: "http://127.0.0.1:1/api" }',
      ...extra
    ].join('\n')
  )
}

/** Holds a port, as another process would. */
async function takenPort(t: { after: (fn: () => unknown) => void }): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  return (server.address() as { port: number }).port
}

describe('command dispatcher: start-up errors are one line and exit 1', () => {
  test('without a token the CISO Assistant profile does not start: exit 1, one line naming api.token and USER_TOKEN', async () => {
    const { code, stdout, stderr } = await conveyor(['dispatcher', '-c', dispatcherConfig()])
    assert.equal(code, 1)
    assert.equal(stdout, '')
    assert.equal(
      stderr,
      'conveyor dispatcher: api.token (from default): is required: set api.token or USER_TOKEN\n'
    )
  })

  test('an HTTP port already in use: dispatcher and run exit 1 with one line naming http.port, no stack trace', async (t) => {
    const port = await takenPort(t)
    const dispatcher = await conveyor(['dispatcher', '-c', dispatcherConfig(), '--port', String(port)], {
      USER_TOKEN: 'pat-1'
    })
    assert.equal(dispatcher.code, 1)
    assert.equal(
      dispatcher.stderr,
      `conveyor dispatcher: http.port: cannot listen on 127.0.0.1:${port}: the port is already in use\n`
    )
    const topic = await useTopic(t, { partitions: 1 })
    const run = await conveyor([
      'run',
      '-c',
      configFile(
        [
          `kafka: { brokers: [${testConnection().brokers.join(', ')}] }`,
          `http: { port: ${port}, host: 127.0.0.1 }`,
          'log: { level: warn }',
          `consumers: [{ groupId: ${useGroup(t)}, topics: [${topic}], handlers: ${handlersModule} }]`
        ].join('\n')
      )
    ])
    assert.equal(run.code, 1)
    assert.equal(
      run.stderr,
      `conveyor run: http.port: cannot listen on 127.0.0.1:${port}: the port is already in use\n`
    )
    assert.ok(!`${run.stdout}${run.stderr}`.includes('    at '), 'no stack trace')
  })

  test('the embedded registry on a port in use: exit 1 with one line', async (t) => {
    const port = await takenPort(t)
    const registry = await conveyor([
      'registry',
      '--port',
      String(port),
      '--brokers',
      testConnection().brokers.join(',')
    ])
    assert.equal(registry.code, 1)
    assert.match(
      registry.stderr,
      new RegExp(
        `^conveyor registry: .*cannot listen on 127\\.0\\.0\\.1:${port}: the port is already in use\\n$`
      )
    )
  })
})

describe('command dispatcher: operating it', () => {
  test('the output is one JSON log stream: the start line too, with the URL; a dead-lettered command is one line', async (t) => {
    const topic = await useTopic(t, { partitions: 1 })
    deleteTopicsAtEnd(t, [`${topic}.dlq`])
    const directory = mkdtempSync(join(tmpdir(), 'dispatcher-log-'))
    const config = join(directory, 'dispatcher.yaml')
    writeFileSync(
      config,
      [
        `kafka: { brokers: [${testConnection().brokers.join(', ')}] }`,
        'http: { host: 127.0.0.1 }',
        'log: { level: info, pretty: false }',
        `dispatcher: { topic: ${topic}, groupId: ${useGroup(t)} }`,
        'api: { url: "http://127.0.0.1:1/api", token: pat-1 }'
      ].join('\n')
    )
    const service = await startService(t, config, {}, 'dispatcher')
    await waitFor(() => service.output().includes('dispatcher started'), {
      timeout: 30_000,
      description: 'the start line'
    })
    const producer = useProducer(t)
    await producer.send({ messages: [{ topic, value: '{"message_type": "update_applied_control"}' }] })
    await waitFor(() => service.output().includes('"outcome":"dead-lettered"'), {
      timeout: 30_000,
      description: 'the command to be dead-lettered'
    })
    const lines = service.output().split('\n').filter(Boolean)
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`)
    const parsed = lines.map((l) => JSON.parse(l))
    const started = parsed.find((l) => l.msg === 'dispatcher started')
    assert.equal(started.url, service.url)
    const dead = parsed.filter((l) => l.offset === '0')
    assert.equal(dead.length, 1, 'one line for the dead-lettered command')
    assert.equal(dead[0].msg, 'message dead-lettered')
    assert.equal(dead[0].reason, 'invalid_command')
    assert.match(dead[0].err.message, /values is required/)
  })

  test('a stop while the API refuses the token ends at once: the waiting command stays uncommitted, not dead-lettered', async (t) => {
    const d = await useDispatcher(t, { fake: { tokens: ['another-token'] }, partitions: 1 })
    d.fake.add('applied-controls', { ref_id: 'AC-1', status: 'to_do' })
    await d.send({
      message_type: 'update_applied_control',
      selector: { ref_id: 'AC-1' },
      values: { status: 'active' }
    })
    await waitFor(() => d.dispatcher.api.availability().state === 'unauthorized', {
      timeout: 30_000,
      description: 'the API to close'
    })
    const started = performance.now()
    await d.dispatcher.stop()
    const took = performance.now() - started
    // The drain timeout is 30 s: a stop that waited for the closed API would take all of it.
    assert.ok(took < 10_000, `the stop took ${Math.round(took)} ms`)
    assert.deepEqual(await committedOffsets(d.topic, 1, d.groupId), [-1n])
    await assert.rejects(d.deadLetters(1, 2_000), 'nothing dead-lettered')
  })

  test('call-level retries are counted in conveyor_api_call_retries_total', async (t) => {
    const d = await useDispatcher(t, { partitions: 1 })
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1', status: 'to_do' })
    d.fake.failNext({ match: 'PATCH', status: 503, times: 2 })
    await d.send({
      message_type: 'update_applied_control',
      selector: { ref_id: 'AC-1' },
      values: { status: 'active' }
    })
    await waitFor(() => control.status === 'active', { timeout: 30_000, description: 'the update' })
    const metrics = await (await fetch(`${d.dispatcher.url}/metrics`)).text()
    assert.match(metrics, /conveyor_api_call_retries_total\{method="PATCH",reason="server_error"\} 2\n/)
  })
})
