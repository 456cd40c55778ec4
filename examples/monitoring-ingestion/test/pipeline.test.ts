/**
 * The monitoring pipeline against a real broker ($KAFKA_BROKERS): the topic naming check and
 * `conveyor topics apply`, competing ingestion consumers, and one trace and one correlation
 * from a recorded metric to the alert it caused.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { promisify } from 'node:util'
import {
  type ConveyorConsumer,
  createConsumer,
  createProducer,
  KafkaTransport,
  type Message,
  waitFor
} from '@conveyorjs/conveyor'
import { conveyorTracing } from '@conveyorjs/conveyor/otel'
import { context, propagation, SpanKind, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { createAlerter, createIngestion, type PipelineEvents, type PipelineService } from '../src/services.ts'
import { checkTopicsFile, topics } from '../src/topics.ts'

const run = promisify(execFile)
const brokers = process.env.KAFKA_BROKERS
if (!brokers) throw new Error('set KAFKA_BROKERS to a Kafka cluster (e.g. npx conveyor kafka up)')
const connection = (clientId: string) => ({ brokers: brokers.split(','), clientId })
const transports: KafkaTransport[] = []
const services: Array<{ stop(): Promise<void> }> = []

function transport(clientId: string): KafkaTransport {
  const created = new KafkaTransport({ connection: connection(clientId) })
  transports.push(created)
  return created
}

before(async () => {
  // The topics exist before any service starts, as `npm run topics` makes them.
  await run('npx', ['conveyor', 'topics', 'apply', 'topics.yaml', '--brokers', brokers])
})

after(async () => {
  for (const service of services.reverse()) await service.stop()
  for (const t of transports) await t.close()
})

test('topic names outside <app>.<domain>.<event>.v<N> are refused before anything is created; the file applies and converges', async () => {
  const bad = join(mkdtempSync(join(tmpdir(), 'topics-')), 'topics.yaml')
  writeFileSync(
    bad,
    [
      'topics:',
      '  airis-mon.metrics.latency: {}',
      '  AirisMon.metrics.latency.v1: {}',
      '  airis-mon.metrics.latency.v0: {}'
    ].join('\n')
  )
  assert.deepEqual(checkTopicsFile(bad), [
    'airis-mon.metrics.latency: has 3 parts, not <app>.<domain>.<event>.v<N>',
    'AirisMon.metrics.latency.v1: uses characters other than lower-case letters, digits and hyphens',
    'airis-mon.metrics.latency.v0: ends with "v0", not a version v1, v2, …'
  ])
  const refused = await run(process.execPath, ['src/topics.ts', bad]).catch((error) => error)
  assert.equal(refused.code, 1)
  assert.equal(refused.stderr.trim().split('\n').length, 3)
  assert.deepEqual(checkTopicsFile('topics.yaml'), [])
  const plan = await run('npx', ['conveyor', 'topics', 'plan', 'topics.yaml', '--brokers', brokers])
  assert.match(plan.stdout, /no changes: the cluster matches the file/)
})

test('competing consumers: three ingestion instances share the six partitions and handle each metric once', async () => {
  const groupId = `ingestion-${randomUUID()}`
  const run = randomUUID()
  // This run's metrics, by value (each value is sent once): a value seen twice was handled twice.
  const handled: number[][] = [[], [], []]
  const instances: PipelineService[] = [0, 1, 2].map((n) =>
    createIngestion({
      transport: transport(`ingestion-${n}`),
      groupId,
      onMetric: (metric) => {
        if (metric.model.startsWith(`m-${run}-`)) handled[n]!.push(metric.value)
      }
    })
  )
  for (const instance of instances) await instance.consumer.start()
  const owned = () => instances.map((i) => i.consumer.status().partitions.length)
  await waitFor(() => owned().every((n) => n >= 1) && owned().reduce((a, b) => a + b) === 6, {
    timeout: 60_000,
    description: 'the six partitions shared by the three instances'
  })
  const sensor = createProducer<PipelineEvents>({ transport: transport('sensor'), topic: topics.recorded })
  await sensor.sendMany(
    Array.from({ length: 600 }, (_, i) => ({
      type: 'metric_recorded' as const,
      payload: {
        name: i % 2 ? 'inference_latency' : 'gpu_util',
        model: `m-${run}-${i % 60}`,
        value: i,
        at: Date.now()
      },
      key: `m-${run}-${i % 60}`
    }))
  )
  const all = () => handled.flat()
  await waitFor(() => all().length >= 600, { timeout: 60_000, description: '600 metrics handled' })
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  assert.equal(all().length, 600, 'no metric handled twice')
  assert.equal(new Set(all()).size, 600, 'every metric handled')
  for (const [n, share] of handled.entries()) assert.ok(share.length > 0, `instance ${n + 1} took its share`)
  for (const instance of instances) await instance.stop()
  await sensor.close()
})

test('one trace and one correlation from a recorded metric, through both services, to the alert it caused', async () => {
  const exporter = new InMemorySpanExporter()
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  )
  const tracing = conveyorTracing()
  const disable = tracing.enable()
  services.push({ stop: async () => disable() })
  const middleware = [tracing.middleware]
  const ingestion = createIngestion({
    transport: transport('traced-ingestion'),
    groupId: `i-${randomUUID()}`,
    middleware
  })
  const alerter = createAlerter({
    transport: transport('traced-alerter'),
    groupId: `a-${randomUUID()}`,
    middleware
  })
  services.push(ingestion, alerter)
  const model = `llm-${randomUUID()}`
  const seen: Record<string, Message<unknown>> = {}
  const keep = {
    handler: (message: Message<unknown>) => {
      if ((message.value as { model?: string }).model === model) seen[message.type] = message
    }
  }
  const watch = (topic: string): ConveyorConsumer =>
    createConsumer({
      transport: transport(`watch-${topic}`),
      groupId: `watch-${randomUUID()}`,
      topics: [topic],
      routes: { metric_recorded: keep, inference_latency_recorded: keep, alert_triggered: keep }
    })
  const watchers = [watch(topics.recorded), watch(topics.latency), watch(topics.alerts)]
  for (const consumer of [ingestion.consumer, alerter.consumer, ...watchers]) await consumer.start()
  services.push(...watchers.map((w) => ({ stop: () => w.stop() })))

  const sensor = createProducer<PipelineEvents>({
    transport: transport('traced-sensor'),
    topic: topics.recorded
  })
  await sensor.send(
    'metric_recorded',
    { name: 'inference_latency', model, value: 950, at: Date.now() },
    { key: model }
  )
  await sensor.close()
  await waitFor(() => seen.alert_triggered, { timeout: 60_000, description: 'the alert' })
  const [recorded, latency, alert] = [
    seen.metric_recorded!,
    seen.inference_latency_recorded!,
    seen.alert_triggered!
  ]

  // Correlation: the alert names the latency event as its cause, and the metric as the origin.
  assert.equal(latency.envelope.causationId, recorded.envelope.id)
  assert.equal(latency.envelope.correlationId, recorded.envelope.id)
  assert.equal(alert.envelope.causationId, latency.envelope.id)
  assert.equal(alert.envelope.correlationId, recorded.envelope.id)
  assert.deepEqual(alert.value, {
    message_type: 'alert_triggered',
    model,
    ms: 950,
    threshold: 800,
    at: (alert.value as { at: number }).at
  })

  // Tracing: one trace, from the sensor's send to the alerter's send, through both services.
  const traceId = (message: Message<unknown>) => message.headers.get('traceparent')?.toString().split('-')[1]
  assert.ok(traceId(recorded))
  assert.equal(traceId(latency), traceId(recorded))
  assert.equal(traceId(alert), traceId(recorded))
  await waitFor(
    () =>
      exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId(recorded)).length >= 5,
    {
      timeout: 30_000,
      description: 'the five spans of the trace'
    }
  )
  const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId(recorded))
  const names = spans.map(
    (s) =>
      `${s.kind === SpanKind.PRODUCER ? 'PRODUCER' : s.kind === SpanKind.CONSUMER ? 'CONSUMER' : s.kind} ${s.name}`
  )
  for (const expected of [
    `PRODUCER send ${topics.recorded}`,
    `CONSUMER process ${topics.recorded}`,
    `PRODUCER send ${topics.latency}`,
    `CONSUMER process ${topics.latency}`,
    `PRODUCER send ${topics.alerts}`
  ])
    assert.ok(names.includes(expected), `${expected} in ${names.join(', ')}`)
})
