/**
 * The relations replicator's gRPC sink against a relations API over real gRPC (a fake
 * server of the test's, test/helpers/fake-relations-api.ts) and the real broker: events
 * applied in order under a lock per partition, a stale lock token refused, an unavailable
 * API waited out.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { loadReplicatorConfig } from '../../../apps/replicator/config.ts'
import { grpcRelationsSink } from '../../../apps/replicator/grpc-sink.ts'
import { decodeRelationsEvent, type RelationsChange } from '../../../apps/replicator/relations.ts'
import { runRelationsReplicator } from '../../../apps/replicator/service.ts'
import { createReplicator } from '../../../src/replicator/replicator.ts'
import { FencedError, type ReplicaEvent } from '../../../src/replicator/sink.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { useFakeRelationsApi } from '../../helpers/fake-relations-api.ts'
import {
  cleanup,
  testConnection,
  useGroup,
  useProducer,
  useTopic,
  useTransport
} from '../../helpers/kafka.ts'
import { envelope, member } from '../../helpers/relations.ts'

test('through the gRPC relations sink each event removes, then adds, its relationships in order, and a planted outage of the API is retried until it answers', async (t) => {
  const api = await useFakeRelationsApi(t)
  const topic = await useTopic(t, { partitions: 2 })
  const groupId = useGroup(t)
  const sink = await grpcRelationsSink({ address: api.address, groupId })
  cleanup(t, () => sink.close())
  api.failNext(3)
  await useProducer(t).send({
    messages: [
      { topic, key: 'g1', value: envelope({ relations_to_add: [member('g1', 'u1'), member('g1', 'u2')] }) },
      {
        topic,
        key: 'g1',
        value: envelope({ relations_to_remove: [member('g1', 'u1')], relations_to_add: [member('g1', 'u3')] })
      },
      { topic, key: 'g1', value: envelope({ relations_to_remove: [member('g1', 'u3')] }) },
      { topic, key: 'g2', value: envelope({ relations_to_add: [member('g2', 'u1')] }) }
    ]
  })
  const replicator = createReplicator({
    transport: useTransport(t),
    groupId,
    topics: [topic],
    sink,
    decode: decodeRelationsEvent,
    retry: { initialDelay: 50, maxDelay: 200 }
  })
  await replicator.start()
  cleanup(t, () => replicator.stop())
  const expected = ['rbac/group:g1#member@rbac/principal:u2', 'rbac/group:g2#member@rbac/principal:u1']
  await waitFor(() => JSON.stringify(api.tuples()) === JSON.stringify(expected), {
    timeout: 30_000,
    description: 'the relations the events leave'
  })
  assert.equal(api.unavailable, 3, 'the planted outage was met and waited out')
  const g1 = api.writes.filter((w) => w.includes('group:g1'))
  assert.deepEqual(g1, [
    'create rbac/group:g1#member@rbac/principal:u1',
    'create rbac/group:g1#member@rbac/principal:u2',
    'delete rbac/group:g1#member@rbac/principal:u1',
    'create rbac/group:g1#member@rbac/principal:u3',
    'delete rbac/group:g1#member@rbac/principal:u3'
  ])
})

test('a write under a lock token someone acquired since is refused by the relations API as a FencedError, and nothing is written', async (t) => {
  const api = await useFakeRelationsApi(t)
  const sink = await grpcRelationsSink({ address: api.address, groupId: 'replica' })
  cleanup(t, () => sink.close())
  const tp = { topic: 'relations', partition: 3 }
  const signal = new AbortController().signal
  const zombie = await sink.acquire(tp, signal)
  const owner = await sink.acquire(tp, signal)
  const event: ReplicaEvent<RelationsChange> = {
    topic: tp.topic,
    partition: 3,
    offset: 0n,
    key: null,
    headers: new Map(),
    value: { relationsToAdd: [member('g9', 'u9')], relationsToRemove: [] }
  }
  await assert.rejects(sink.write(tp, [event], 1n, zombie.token), FencedError)
  assert.deepEqual(api.tuples(), [])
  assert.equal(api.refused, 1)
  await sink.write(tp, [event], 1n, owner.token)
  assert.deepEqual(api.tuples(), ['rbac/group:g9#member@rbac/principal:u9'])
})

test('`conveyor replicator` with sink: grpc sends the relations to the API named by RELATION_API_SERVER, without PostgreSQL', async (t) => {
  const api = await useFakeRelationsApi(t)
  const topic = await useTopic(t, { partitions: 1 })
  const groupId = useGroup(t)
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-replicator-'))
  const file = join(dir, 'replicator.yaml')
  writeFileSync(
    file,
    [
      'http: { port: 0, host: 127.0.0.1 }',
      'log: { level: error }',
      `health: { livenessFile: ${join(dir, 'live')}, readinessFile: ${join(dir, 'ready')} }`,
      'replicator: { sink: grpc }',
      // Unreachable on purpose: the gRPC sink needs no database.
      "postgres: { url: 'postgres://nobody@127.0.0.1:1/none' }"
    ].join('\n')
  )
  const service = await runRelationsReplicator(
    await loadReplicatorConfig({
      file,
      env: {
        KAFKA_SERVERS: testConnection().brokers.join(','),
        RBAC_KAFKA_CONSUMER_TOPIC: topic,
        RBAC_KAFKA_CONSUMER_GROUP_ID: groupId,
        RELATION_API_SERVER: api.address
      }
    })
  )
  cleanup(t, () => service.stop())
  await useProducer(t).send({
    messages: [{ topic, key: 'g1', value: envelope({ relations_to_add: [member('g1', 'u1')] }) }]
  })
  await waitFor(() => api.tuples().length === 1, { timeout: 30_000, description: 'the relation at the API' })
  assert.deepEqual(api.tuples(), ['rbac/group:g1#member@rbac/principal:u1'])
  await waitFor(async () => (await fetch(`${service.url}/health/ready`)).status === 200, {
    timeout: 30_000,
    description: 'ready'
  })
})
