import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { enableMetrics } from '../../../src/instrumentation/metrics.ts'
import { createProducer } from '../../../src/producer/producer.ts'
import { bounded } from '../../../src/retry/policy.ts'
import { SchemaRegistryClient } from '../../../src/schema/registry-client.ts'
import { MemoryTransport } from '../../../src/testing/memory-transport.ts'
import { waitFor } from '../../../src/util/wait.ts'

test('the counters and histograms move as messages are handled, retried, dead-lettered, committed and produced', async (t) => {
  const metrics = enableMetrics()
  t.after(() => metrics.disable())
  const transport = new MemoryTransport()
  const topic = `t-${randomUUID()}`
  transport.createTopic(topic, 2)
  const consumer = createConsumer({
    transport,
    groupId: 'metrics-group',
    topics: [topic],
    commitInterval: 10,
    routes: {
      ok: { handler: () => {} },
      bad: {
        retry: bounded({ retries: 2, initialDelay: 1, maxDelay: 1 }),
        handler: () => Promise.reject(new TypeError('no'))
      }
    }
  })
  await consumer.start()
  t.after(() => consumer.stop())
  const producer = createProducer({ transport, topic })
  await producer.sendMany([
    ...Array.from({ length: 5 }, (_, i) => ({ type: 'ok', payload: { i }, key: `k${i}` })),
    { type: 'bad', payload: {}, key: 'x' }
  ])
  await waitFor(() => transport.records(`${topic}.dlq`).length === 1)
  await waitFor(async () =>
    (await metrics.registry.metrics()).includes(
      'conveyor_commit_duration_seconds_count{group="metrics-group"}'
    )
  )
  const text = await metrics.registry.metrics()
  assert.match(
    text,
    new RegExp(`conveyor_messages_total\\{topic="${topic}",type="ok",outcome="processed"\\} 5`)
  )
  assert.match(
    text,
    new RegExp(`conveyor_messages_total\\{topic="${topic}",type="bad",outcome="dead-lettered"\\} 1`)
  )
  assert.match(
    text,
    new RegExp(`conveyor_retries_total\\{topic="${topic}",type="bad",error="TypeError",attempt="1"\\} 1`)
  )
  assert.match(
    text,
    new RegExp(`conveyor_dead_lettered_total\\{topic="${topic}",reason="retries_exhausted"\\} 1`)
  )
  assert.match(text, new RegExp(`conveyor_handling_duration_seconds_count\\{topic="${topic}",type="ok"\\} 5`))
  assert.match(text, /conveyor_in_flight\{group="metrics-group"\} 0/)
  assert.match(text, /conveyor_assigned_partitions\{group="metrics-group"\} 2/)
  assert.match(text, new RegExp(`conveyor_producer_sends_total\\{topic="${topic}",outcome="ok"\\} 6`))
})

test('schema registry requests and cache hits are counted', async (t) => {
  const metrics = enableMetrics()
  t.after(() => metrics.disable())
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' })
    response.end(JSON.stringify({ schema: '"string"' }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => server.close(resolve)))
  const client = new SchemaRegistryClient({
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  for (let i = 0; i < 3; i++) await client.getById(7)
  const text = await metrics.registry.metrics()
  assert.match(
    text,
    /conveyor_registry_requests_total\{method="GET",endpoint="schemas\/ids",status="200"\} 1/
  )
  assert.match(text, /conveyor_registry_cache_total\{endpoint="schemas\/ids",result="miss"\} 1/)
  assert.match(text, /conveyor_registry_cache_total\{endpoint="schemas\/ids",result="hit"\} 2/)
})
