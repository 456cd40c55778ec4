import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { loadReplicatorConfig } from '../../../apps/replicator/config.ts'
import { runRelationsReplicator } from '../../../apps/replicator/service.ts'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { LocalKafka } from '../../../src/dev/kafka/index.ts'
import { Channels } from '../../../src/instrumentation/channels.ts'
import { enableMetrics } from '../../../src/instrumentation/metrics.ts'
import { clientOptions, type KafkaConnection } from '../../../src/kafka/connection.ts'
import { KafkaTransport } from '../../../src/kafka/transport.ts'
import { HealthMonitor } from '../../../src/service/health.ts'
import { startServiceHttp } from '../../../src/service/http.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, uniqueName } from '../../helpers/kafka.ts'
import { usePool, useTable } from '../../helpers/postgres.ts'
import { configFile, handlersModule, startService } from '../../helpers/service.ts'

// A broker of its own, to stop and start under a running consumer.
const kafka = new LocalKafka({
  name: 'test-outage',
  port: Number(process.env.CONVEYOR_TEST_OUTAGE_PORT ?? 29592),
  log: (line) => process.stderr.write(`[kafka test-outage] ${line}\n`)
})
let connection: KafkaConnection

before(async () => {
  await kafka.down({ purge: true })
  const info = await kafka.up()
  connection = {
    brokers: info.bootstrap,
    clientId: 'outage-test',
    connectTimeout: 2_000,
    requestTimeout: 5_000
  }
})
after(() => kafka.down({ purge: true }))

test('a consumer keeps going across a 30 s broker outage: it joins again by itself and nothing is lost', async (t) => {
  const topic = uniqueName('outage')
  const admin = new Admin(clientOptions(connection))
  await admin.createTopics({ topics: [topic], partitions: 2, replicas: 1 })
  await admin.close()
  const transport = new KafkaTransport({ connection, maxWaitTime: 200 })
  cleanup(t, () => transport.close())
  const publisher = transport.publisher()
  cleanup(t, () => publisher.close())
  const seen = new Set<number>()
  const errors: unknown[] = []
  const onError = (event: unknown) => errors.push(event)
  subscribe(Channels.error, onError)
  cleanup(t, () => unsubscribe(Channels.error, onError))
  const consumer = createConsumer({
    transport,
    groupId: uniqueName('group'),
    topics: [topic],
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    routes: { n: { handler: (m) => void seen.add((m.value as { i: number }).i) } }
  })
  await consumer.start()
  cleanup(t, () => consumer.stop())
  const send = (from: number, count: number) =>
    publisher.send(
      Array.from({ length: count }, (_, k) => ({
        topic,
        key: `k${from + k}`,
        value: JSON.stringify({ message_type: 'n', i: from + k })
      }))
    )
  await send(0, 50)
  await waitFor(() => seen.size === 50, { timeout: 30_000, description: 'the first 50' })

  await kafka.stopBroker(1)
  await new Promise((resolve) => setTimeout(resolve, 30_000)) // longer than the client retries: the consumer must join again by itself
  await kafka.startBroker(1)
  await waitFor(
    async () => {
      await send(50, 50)
      return true
    },
    { timeout: 60_000, description: 'producing again after the restart' }
  )
  await waitFor(() => seen.size >= 100, {
    timeout: 90_000,
    description: 'the messages produced after the restart'
  })
  assert.equal(consumer.state, 'running', `the consumer is still running (errors: ${errors.length})`)
  for (let i = 0; i < 100; i++) assert.ok(seen.has(i), `message ${i} handled`)
})

test('readiness goes false when the broker stops and true again after it restarts; /metrics shows the counters moving', async (t) => {
  const topic = uniqueName('ready')
  const admin = new Admin(clientOptions(connection))
  await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 })
  await admin.close()
  const groupId = uniqueName('group')
  const readinessFile = join(mkdtempSync(join(tmpdir(), 'probe-')), 'ready')
  const livenessFile = join(mkdtempSync(join(tmpdir(), 'probe-')), 'live')
  const health = new HealthMonitor({
    groups: [groupId],
    stallTimeout: 3_000,
    interval: 200,
    readinessFile,
    livenessFile
  }).start()
  cleanup(t, () => health.stop())
  const metrics = enableMetrics()
  cleanup(t, () => metrics.disable())
  const { url, server } = await startServiceHttp({
    port: 0,
    host: '127.0.0.1',
    health,
    metrics: metrics.registry
  })
  cleanup(t, () => new Promise((resolve) => server.close(resolve)))
  const transport = new KafkaTransport({ connection, maxWaitTime: 200 })
  cleanup(t, () => transport.close())
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topic],
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
    routes: { n: { handler: () => {} } }
  })
  const status = async (path: string) => (await fetch(`${url}${path}`)).status
  assert.equal(await status('/health/ready'), 503, 'not ready before the consumer runs')
  assert.equal(await status('/health/live'), 200)
  await consumer.start()
  cleanup(t, () => consumer.stop())
  await waitFor(async () => (await status('/health/ready')) === 200, {
    timeout: 30_000,
    description: 'ready'
  })
  await waitFor(() => existsSync(readinessFile) && existsSync(livenessFile), {
    timeout: 5_000,
    description: 'the probe files while ready'
  })

  const publisher = transport.publisher()
  cleanup(t, () => publisher.close())
  await publisher.send(
    Array.from({ length: 5 }, (_, i) => ({
      topic,
      key: `k${i}`,
      value: JSON.stringify({ message_type: 'n' })
    }))
  )
  const counted = new RegExp(`conveyor_messages_total\\{topic="${topic}",type="n",outcome="processed"\\} 5`)
  await waitFor(async () => counted.test(await (await fetch(`${url}/metrics`)).text()), {
    timeout: 20_000,
    description: '/metrics to count 5'
  })

  await kafka.stopBroker(1)
  await waitFor(async () => (await status('/health/ready')) === 503, {
    timeout: 30_000,
    description: 'not ready with the broker down'
  })
  await waitFor(() => !existsSync(readinessFile), { timeout: 5_000, description: 'the readiness file to go' })
  const report = await (await fetch(`${url}/health/ready`)).json()
  assert.match(JSON.stringify(report), /no fetch for \d+ s/)
  assert.equal(await status('/health/live'), 200, 'still live')

  await kafka.startBroker(1)
  await waitFor(async () => (await status('/health/ready')) === 200, {
    timeout: 90_000,
    description: 'ready again after the restart'
  })
})

test('a service started with `conveyor run` turns unready while its broker is down and ready again after the restart', async (t) => {
  const topic = uniqueName('svc')
  const admin = new Admin(clientOptions(connection))
  await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 })
  await admin.close()
  const config = configFile(
    [
      `kafka: { brokers: [${connection.brokers.join(', ')}] }`,
      'http: { port: 0, host: 127.0.0.1 }',
      'health: { stallTimeout: 3000 }',
      `consumers: [{ groupId: ${uniqueName('svc')}, topics: [${topic}], handlers: ${handlersModule} }]`
    ].join('\n')
  )
  const service = await startService(t, config)
  const ready = async () => (await fetch(`${service.url}/health/ready`)).status
  await waitFor(async () => (await ready()) === 200, { timeout: 30_000, description: 'ready' })
  await kafka.stopBroker(1)
  await waitFor(async () => (await ready()) === 503, {
    timeout: 30_000,
    description: 'unready with the broker down'
  })
  await kafka.startBroker(1)
  await waitFor(async () => (await ready()) === 200, {
    timeout: 90_000,
    description: 'ready after the restart'
  })
  service.child.kill('SIGTERM')
  assert.equal(await service.exited, 0)
})

test('the relations replicator’s probe files follow the seed’s table: both present while running (idle too), the readiness file gone while the broker is down and back after it, both gone once the process stops', async (t) => {
  const topic = uniqueName('replica')
  const admin = new Admin(clientOptions(connection))
  await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 })
  await admin.close()
  const pool = usePool(t)
  const relations = useTable(t, pool, 'relations')
  const positions = useTable(t, pool, 'positions')
  const skips = useTable(t, pool, 'skips')
  const dir = mkdtempSync(join(tmpdir(), 'probe-'))
  const live = join(dir, 'kubernetes-liveness')
  const ready = join(dir, 'kubernetes-readiness')
  const config = configFile(
    [
      'http: { port: 0, host: 127.0.0.1 }',
      'log: { level: error }',
      `health: { stallTimeout: 3000, interval: 200, livenessFile: ${live}, readinessFile: ${ready} }`,
      `replicator: { groupId: ${uniqueName('replica')}, positionsTable: ${positions}, relationsTable: ${relations}, skipsTable: ${skips} }`,
      "postgres: { url: 'postgres://postgres@127.0.0.1:5432/test' }"
    ].join('\n')
  )
  const service = await runRelationsReplicator(
    await loadReplicatorConfig({
      file: config,
      env: { KAFKA_SERVERS: connection.brokers.join(','), RBAC_KAFKA_CONSUMER_TOPIC: topic }
    })
  )
  cleanup(t, () => service.stop())
  await waitFor(() => existsSync(live) && existsSync(ready), {
    timeout: 30_000,
    description: 'both files while running and idle'
  })
  await kafka.stopBroker(1)
  await waitFor(() => !existsSync(ready), {
    timeout: 30_000,
    description: 'the readiness file gone, broker down'
  })
  assert.ok(existsSync(live), 'the liveness file stays: restarting would not bring the broker back')
  await kafka.startBroker(1)
  await waitFor(() => existsSync(ready), { timeout: 90_000, description: 'the readiness file back' })
  await service.stop()
  assert.equal(existsSync(live) || existsSync(ready), false, 'both files gone with the process')
})
