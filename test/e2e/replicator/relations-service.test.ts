/**
 * The relations replicator as users run it (`conveyor replicator`'s service, in process):
 * Debezium envelopes from the broker applied to a PostgreSQL relations table in order,
 * bad input dead-lettered with its reason, the probe files and /health/ready reflecting
 * the broker and the database.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { loadReplicatorConfig } from '../../../apps/replicator/config.ts'
import { listRelations } from '../../../apps/replicator/relations-store.ts'
import { runRelationsReplicator } from '../../../apps/replicator/service.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { conveyor } from '../../helpers/cli.ts'
import { cleanup, readAll, testConnection, useGroup, useProducer, useTopic } from '../../helpers/kafka.ts'
import { usePool, useTable } from '../../helpers/postgres.ts'
import { envelope, member } from '../../helpers/relations.ts'
import { useTcpProxy } from '../../helpers/tcp-proxy.ts'

test('the relations replicator applies Debezium events in order to its PostgreSQL table, dead-letters bad input with its reason, and its probe files follow readiness', async (t) => {
  const topic = await useTopic(t, { partitions: 3 })
  const groupId = useGroup(t)
  const pool = usePool(t)
  const relations = useTable(t, pool, 'relations')
  const positions = useTable(t, pool, 'positions')
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-replicator-'))
  const file = join(dir, 'replicator.yaml')
  writeFileSync(
    file,
    [
      'http: { port: 0, host: 127.0.0.1 }',
      'log: { level: warn }',
      `health: { livenessFile: ${join(dir, 'live')}, readinessFile: ${join(dir, 'ready')}, interval: 200 }`,
      `replicator: { positionsTable: ${positions}, relationsTable: ${relations}, metricNames: rbac, retry: { initialDelay: 100, maxDelay: 1000 } }`,
      'postgres: { checkInterval: 500 }'
    ].join('\n')
  )
  const loaded = await loadReplicatorConfig({
    file,
    env: {
      KAFKA_SERVERS: testConnection().brokers.join(','),
      RBAC_KAFKA_CONSUMER_TOPIC: topic,
      RBAC_KAFKA_CONSUMER_GROUP_ID: groupId,
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test'
    }
  })
  const service = await runRelationsReplicator(loaded)
  cleanup(t, () => service.stop())

  await useProducer(t).send({
    messages: [
      { topic, key: 'g1', value: envelope({ relations_to_add: [member('g1', 'u1'), member('g1', 'u2')] }) },
      {
        topic,
        key: 'g1',
        value: envelope({ relations_to_add: [member('g1', 'u3')], relations_to_remove: [member('g1', 'u1')] })
      },
      { topic, key: 'g2', value: envelope({ relations_to_add: [member('g2', 'u1')] }) },
      { topic, key: 'g2', value: envelope({ relations_to_remove: [member('g2', 'u1')] }) },
      { topic, key: 'g3', value: 'not json' },
      { topic, key: 'g3', value: envelope({ org_id: '1', workspace: { id: 'w1' }, operation: 'create' }) },
      { topic, key: 'g3', value: envelope({ relations_to_add: [member('g3', 'u9')] }) }
    ]
  })
  const client = await pool.connect()
  cleanup(t, () => client.release())
  const expected = [
    'rbac/group:g1#member@rbac/principal:u2',
    'rbac/group:g1#member@rbac/principal:u3',
    'rbac/group:g3#member@rbac/principal:u9'
  ]
  await waitFor(
    async () => JSON.stringify(await listRelations(client, relations)) === JSON.stringify(expected),
    {
      timeout: 60_000,
      description: 'the relations the events leave'
    }
  )
  const dead = await readAll(t, `${topic}.dlq`, 2)
  assert.deepEqual(dead.map((r) => r.headers.get('dlq_reason')?.toString()).sort(), [
    'invalid_json',
    'unsupported_payload'
  ])

  // The seed consumer's metric names (metricNames: rbac), so its dashboards keep working.
  const metrics = await (await fetch(`${service.url}/metrics`)).text()
  const value = (series: string) =>
    Number(
      metrics
        .split('\n')
        .find((line) => line.startsWith(`${series} `))
        ?.split(' ')[1]
    )
  assert.equal(
    value('rbac_kafka_consumer_messages_processed_total{message_type="relations",status="success"}'),
    5
  )
  assert.equal(
    value('rbac_kafka_consumer_messages_processed_total{message_type="debezium",status="dead_lettered"}'),
    2
  )
  assert.equal(value('rbac_kafka_consumer_validation_errors_total{error_type="invalid_json"}'), 1)
  assert.equal(value('rbac_kafka_consumer_validation_errors_total{error_type="unsupported_payload"}'), 1)
  assert.match(
    metrics,
    /^rbac_kafka_consumer_message_processing_duration_seconds_count\{message_type="relations"\} 5$/m
  )

  const ready = await fetch(`${service.url}/health/ready`)
  assert.equal(ready.status, 200, await ready.text())
  await waitFor(() => existsSync(join(dir, 'ready')) && existsSync(join(dir, 'live')), {
    description: 'both probe files'
  })
  await service.stop()
  assert.equal(existsSync(join(dir, 'ready')), false, 'readiness file removed at stop')
  assert.equal(existsSync(join(dir, 'live')), false, 'liveness file removed at stop: the process is gone')
})

test('with KAFKA_ENABLED=false the replicator says so and stops at once', async () => {
  const loaded = await loadReplicatorConfig({ env: { KAFKA_ENABLED: 'false' } })
  const service = await runRelationsReplicator(loaded)
  await service.stopped
  assert.equal(service.replicator, undefined)
})

test('while PostgreSQL is unreachable the replicator is not ready (the readiness file goes, the liveness file stays) and its events wait; once it answers, they are applied', async (t) => {
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  const pool = usePool(t)
  const relations = useTable(t, pool, 'relations')
  const positions = useTable(t, pool, 'positions')
  const proxy = await useTcpProxy(t, { host: '127.0.0.1', port: 5432 })
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-replicator-'))
  const file = join(dir, 'replicator.yaml')
  writeFileSync(
    file,
    [
      'http: { port: 0, host: 127.0.0.1 }',
      'log: { level: error }',
      `health: { livenessFile: ${join(dir, 'live')}, readinessFile: ${join(dir, 'ready')}, interval: 200 }`,
      `replicator: { positionsTable: ${positions}, relationsTable: ${relations}, retry: { initialDelay: 100, maxDelay: 1000 } }`,
      'postgres: { checkInterval: 300 }'
    ].join('\n')
  )
  const service = await runRelationsReplicator(
    await loadReplicatorConfig({
      file,
      env: {
        KAFKA_SERVERS: testConnection().brokers.join(','),
        RBAC_KAFKA_CONSUMER_TOPIC: topic,
        RBAC_KAFKA_CONSUMER_GROUP_ID: groupId,
        DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}/test`
      }
    })
  )
  cleanup(t, () => service.stop())
  const readiness = async () => (await fetch(`${service.url}/health/ready`)).status
  await waitFor(async () => (await readiness()) === 200, { timeout: 30_000, description: 'ready' })

  proxy.cut()
  await waitFor(async () => (await readiness()) === 503, { timeout: 10_000, description: 'not ready' })
  await waitFor(() => !existsSync(join(dir, 'ready')), { description: 'the readiness file gone' })
  assert.ok(existsSync(join(dir, 'live')), 'the liveness file stays')
  assert.equal((await fetch(`${service.url}/health/live`)).status, 200)
  await useProducer(t).send({
    messages: [{ topic, key: 'g1', value: envelope({ relations_to_add: [member('g1', 'u1')] }) }]
  })
  await new Promise((resolve) => setTimeout(resolve, 2_000))
  const client = await pool.connect()
  cleanup(t, () => client.release())
  assert.deepEqual(await listRelations(client, relations), [], 'nothing applied while the database is away')

  proxy.restore()
  await waitFor(async () => (await readiness()) === 200, { timeout: 30_000, description: 'ready again' })
  await waitFor(async () => (await listRelations(client, relations)).length === 1, {
    timeout: 30_000,
    description: 'the event applied'
  })
})

test('with onInvalid: block a partition stops at an invalid event (still ready, shown by /status, the metrics and `conveyor lag`) while the others go on, until `conveyor replicator skip` sends that one event to the DLQ', async (t) => {
  const topic = await useTopic(t, { partitions: 2 })
  const groupId = useGroup(t)
  const pool = usePool(t)
  const relations = useTable(t, pool, 'relations')
  const positions = useTable(t, pool, 'positions')
  const skips = useTable(t, pool, 'skips')
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-replicator-'))
  const file = join(dir, 'replicator.yaml')
  writeFileSync(
    file,
    [
      `kafka: { brokers: [${testConnection().brokers.join(', ')}] }`,
      'http: { port: 0, host: 127.0.0.1 }',
      'log: { level: error }',
      `health: { livenessFile: ${join(dir, 'live')}, readinessFile: ${join(dir, 'ready')}, interval: 200 }`,
      `replicator: { topic: ${topic}, groupId: ${groupId}, onInvalid: block, positionsTable: ${positions}, relationsTable: ${relations}, skipsTable: ${skips} }`,
      "postgres: { url: 'postgres://postgres@127.0.0.1:5432/test' }"
    ].join('\n')
  )
  const service = await runRelationsReplicator(await loadReplicatorConfig({ file, env: {} }))
  cleanup(t, () => service.stop())
  await useProducer(t).send({
    messages: [
      { topic, partition: 0, value: envelope({ relations_to_add: [member('g1', 'u1')] }) },
      { topic, partition: 0, value: 'not json' },
      { topic, partition: 0, value: envelope({ relations_to_add: [member('g1', 'u2')] }) },
      { topic, partition: 1, value: envelope({ relations_to_add: [member('g2', 'u1')] }) },
      { topic, partition: 1, value: envelope({ relations_to_add: [member('g2', 'u2')] }) }
    ]
  })
  const client = await pool.connect()
  cleanup(t, () => client.release())
  await waitFor(async () => (await listRelations(client, relations)).length === 3, {
    timeout: 60_000,
    description: 'partition 1 applied, partition 0 up to the invalid event'
  })
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert.deepEqual(await listRelations(client, relations), [
    'rbac/group:g1#member@rbac/principal:u1',
    'rbac/group:g2#member@rbac/principal:u1',
    'rbac/group:g2#member@rbac/principal:u2'
  ])
  assert.equal(
    (await fetch(`${service.url}/health/ready`)).status,
    200,
    'a blocked partition is not a reason to restart or unroute'
  )
  const status = (await (await fetch(`${service.url}/status`)).json()) as {
    consumers: Array<{ blocked?: Array<{ partition: number; offset: string; reason: string }> }>
  }
  assert.deepEqual(
    status.consumers
      .flatMap((c) => c.blocked ?? [])
      .map(({ partition, offset, reason }) => ({ partition, offset, reason })),
    [{ partition: 0, offset: '1', reason: 'invalid_json' }]
  )
  assert.match(
    await (await fetch(`${service.url}/metrics`)).text(),
    /^conveyor_replicator_blocked_partitions 1$/m
  )
  const lag = await conveyor(['lag', groupId, '--service', service.url], {
    CONVEYOR_KAFKA_BROKERS: testConnection().brokers.join(',')
  })
  assert.equal(lag.code, 0, lag.stderr)
  assert.match(lag.stdout, new RegExp(`${topic}/0 .*stopped at invalid offset 1 \\(invalid_json\\)`))

  const skipped = await conveyor(['replicator', 'skip', '-c', file, '--partition', '0', '--offset', '1'])
  assert.equal(skipped.code, 0, skipped.stderr)
  await waitFor(async () => (await listRelations(client, relations)).length === 4, {
    timeout: 30_000,
    description: 'partition 0 going on after the skip'
  })
  const [dead] = await readAll(t, `${topic}.dlq`, 1)
  assert.equal(dead?.headers.get('dlq_reason')?.toString(), 'invalid_json')
  assert.equal(dead?.headers.get('dlq_source_offset')?.toString(), '1')
  assert.match(
    await (await fetch(`${service.url}/metrics`)).text(),
    /^conveyor_replicator_blocked_partitions 0$/m
  )
})
