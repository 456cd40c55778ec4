import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { CommandCodec } from '../../../apps/dispatcher/commands.ts'
import { FakeCisoAssistant } from '../../../apps/dispatcher/fake-ciso-assistant.ts'
import { Channels, type DeadLetteredEvent } from '../../../src/instrumentation/channels.ts'
import { KafkaTransport } from '../../../src/kafka/transport.ts'
import { ConveyorProducer } from '../../../src/producer/producer.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { commandCatalog, useDispatcher } from '../../helpers/dispatcher.ts'
import {
  cleanup,
  committedOffsets,
  deleteTopicsAtEnd,
  testConnection,
  useGroup,
  useTopic
} from '../../helpers/kafka.ts'
import { useRegistry } from '../../helpers/registry.ts'
import { startService } from '../../helpers/service.ts'

const committedTotal = async (topic: string, groupId: string) =>
  (await committedOffsets(topic, 1, groupId)).reduce((sum, o) => sum + (o < 0n ? 0n : o), 0n)

describe('command dispatcher: refused credentials and outages make commands wait, never fail', () => {
  test('401: commands wait uncommitted, readiness turns false, one log line asks to renew the token; a renewed token file resumes them', async (t) => {
    const fake = await new FakeCisoAssistant({ tokens: ['old-token'] }).start()
    cleanup(t, () => fake.stop())
    const control = fake.add('applied-controls', { ref_id: 'AC-1', priority: '4' })
    const { url: registryUrl, client: registry } = await useRegistry(t)
    const topic = await useTopic(t, { partitions: 1 })
    deleteTopicsAtEnd(t, [`${topic}.dlq`])
    const groupId = useGroup(t)
    const directory = mkdtempSync(join(tmpdir(), 'dispatcher-auth-'))
    const tokenFile = join(directory, 'token')
    writeFileSync(tokenFile, 'old-token\n')
    const configPath = join(directory, 'dispatcher.yaml')
    writeFileSync(
      configPath,
      [
        `kafka: { brokers: [${testConnection().brokers.join(', ')}] }`,
        `registry: { url: ${registryUrl} }`,
        'http: { port: 0, host: 127.0.0.1 }',
        'log: { level: info }',
        `dispatcher: { topic: ${topic}, groupId: ${groupId} }`,
        `api:`,
        `  url: ${fake.url}`,
        `  token: { file: ${tokenFile} }`,
        '  probeBackoff: { initialDelay: 200, multiplier: 2, maxDelay: 800 }',
        'health: { stallTimeout: 60000 }'
      ].join('\n')
    )
    const service = await startService(t, configPath, {}, 'dispatcher')
    const ready = async () => (await fetch(`${service.url}/health/ready`)).status
    await waitFor(async () => (await ready()) === 200, { timeout: 30_000, description: 'ready' })

    const transport = new KafkaTransport({ connection: testConnection() })
    cleanup(t, () => transport.close())
    const producer = new ConveyorProducer({
      transport,
      topic,
      codec: new CommandCodec({ registry, catalog: commandCatalog })
    })
    const command = (priority: string) => ({
      message_type: 'update_applied_control',
      selector: { ref_id: 'AC-1' },
      values: { priority }
    })
    await producer.send('update_applied_control', command('3'), { key: 'AC-1' })
    await waitFor(() => control.priority === '3', { timeout: 30_000, description: 'the first command' })
    await waitFor(async () => (await committedTotal(topic, groupId)) === 1n, { timeout: 30_000 })

    fake.tokens.clear() // the token expires
    await producer.send('update_applied_control', command('2'), { key: 'AC-1' })
    await producer.send('update_applied_control', command('1'), { key: 'AC-1' })
    await waitFor(async () => (await ready()) === 503, { timeout: 30_000, description: 'not ready' })
    const report = await (await fetch(`${service.url}/health/ready`)).json()
    assert.match(
      JSON.stringify(report),
      /refuses the token \(401 \{\\"detail\\":\\"Invalid token\.\\"\}\): renew it/
    )
    // Several probes are refused while the commands wait.
    await waitFor(() => fake.calls.filter((c) => c.status === 401).length >= 4, { timeout: 30_000 })
    assert.equal(control.priority, '3')
    assert.equal(await committedTotal(topic, groupId), 1n, 'nothing committed past the waiting command')
    const status = (await (await fetch(`${service.url}/status`)).json()) as { api: { state: string } }
    assert.equal(status.api.state, 'unauthorized')

    fake.tokens.add('new-token')
    writeFileSync(tokenFile, 'new-token\n') // the operator renews the token
    await waitFor(() => control.priority === '1', { timeout: 30_000, description: 'the waiting commands' })
    await waitFor(async () => (await committedTotal(topic, groupId)) === 3n, { timeout: 30_000 })
    await waitFor(async () => (await ready()) === 200, { timeout: 30_000, description: 'ready again' })
    assert.deepEqual(
      fake.calls.filter((c) => c.method === 'PATCH' && c.status === 200).map((c) => c.body),
      [{ priority: '3' }, { priority: '2' }, { priority: '1' }],
      'each command carried out once, in order'
    )
    const lines = service.output().split('\n')
    assert.equal(lines.filter((l) => l.includes('the API refuses the token: renew it')).length, 1)
    assert.equal(lines.filter((l) => l.includes('commands resume')).length, 1)
    assert.equal(lines.filter((l) => l.includes('dead-lettered')).length, 0)
    assert.ok(
      !service.output().includes('new-token') && !service.output().includes('old-token'),
      'tokens never logged'
    )
  })

  test('403 closes the API like 401: the command waits, a probe reopens it, and it is carried out once, not dead-lettered', async (t) => {
    const d = await useDispatcher(t, {
      partitions: 1,
      config: { api: { probeBackoff: { initialDelay: 100, multiplier: 2, maxDelay: 400 } } }
    })
    const control = d.fake.add('applied-controls', { ref_id: 'AC-1', status: 'to_do' })
    d.fake.failNext({ match: 'PATCH', status: 403, times: 1 })
    d.fake.failNext({ match: 'GET /api/applied-controls/?limit=1', status: 403, times: 2 })
    const states = new Set<string>()
    const sampler = setInterval(() => states.add(d.dispatcher.api.availability().state), 10)
    cleanup(t, () => clearInterval(sampler))
    await d.send({
      message_type: 'update_applied_control',
      selector: { ref_id: 'AC-1' },
      values: { status: 'active' }
    })
    await waitFor(async () => (await committedTotal(d.topic, d.groupId)) === 1n, { timeout: 30_000 })
    assert.ok(states.has('unauthorized'))
    assert.equal(control.status, 'active')
    assert.deepEqual(d.fake.callLines({ includeFailed: true }), [
      'GET /api/applied-controls/?ref_id=AC-1',
      `PATCH /api/applied-controls/${control.id}/`,
      'GET /api/applied-controls/?limit=1',
      'GET /api/applied-controls/?limit=1',
      'GET /api/applied-controls/?limit=1',
      `PATCH /api/applied-controls/${control.id}/`
    ])
    assert.deepEqual(
      d.fake.calls.map((c) => c.status),
      [200, 403, 403, 403, 200, 200]
    )
  })

  test('an outage (connections refused): commands wait instead of using up their retries, and none is dead-lettered', async (t) => {
    const d = await useDispatcher(t, {
      partitions: 1,
      config: {
        api: {
          outageThreshold: 3,
          probeBackoff: { initialDelay: 100, multiplier: 2, maxDelay: 400 }
        }
      }
    })
    let deadLettered = 0
    const onDeadLetter = (event: unknown) => {
      if ((event as DeadLetteredEvent).groupId === d.groupId) deadLettered += 1
    }
    subscribe(Channels.deadLettered, onDeadLetter)
    cleanup(t, () => unsubscribe(Channels.deadLettered, onDeadLetter))
    const controls = Array.from({ length: 20 }, (_, i) =>
      d.fake.add('applied-controls', { ref_id: `AC-${i}` })
    )
    const outage = d.fake.outage(4_000)
    for (const [i] of controls.entries())
      await d.send({
        message_type: 'update_applied_control',
        selector: { ref_id: `AC-${i}` },
        values: { priority: '1' }
      })
    await waitFor(() => d.dispatcher.api.availability().state === 'unreachable', { timeout: 10_000 })
    await outage
    await waitFor(async () => (await committedTotal(d.topic, d.groupId)) === 20n, { timeout: 60_000 })
    for (const control of controls) assert.equal(control.priority, '1')
    assert.equal(d.dispatcher.api.availability().state, 'open')
    assert.equal(deadLettered, 0)
  })
})
