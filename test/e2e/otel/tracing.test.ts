import assert from 'node:assert/strict'
import { test } from 'node:test'
import { context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { createConsumer } from '../../../src/consumer/consumer.ts'
import { conveyorTracing } from '../../../src/otel/index.ts'
import { createProducer } from '../../../src/producer/producer.ts'
import { waitFor } from '../../../src/util/wait.ts'
import { cleanup, useGroup, useTopic, useTransport } from '../../helpers/kafka.ts'

test('a trace started by a producer continues through a consumer that produces again: one trace id, parents and links right', async (t) => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const contextManager = new AsyncLocalStorageContextManager().enable()
  context.setGlobalContextManager(contextManager)
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] })
  )
  trace.setGlobalTracerProvider(provider)
  cleanup(t, () => {
    trace.disable()
    propagation.disable()
    context.disable()
  })
  const tracing = conveyorTracing()
  cleanup(t, tracing.enable())

  const orders = await useTopic(t)
  const invoices = await useTopic(t)
  const transport = useTransport(t)
  const producer = createProducer({ transport })
  cleanup(t, () => producer.close())

  const first = createConsumer({
    transport,
    groupId: useGroup(t),
    topics: [orders],
    middleware: [tracing.middleware],
    routes: {
      order_placed: {
        handler: async (message) => {
          await producer.send(
            'invoice_requested',
            { order: 'o-1' },
            { topic: invoices, key: 'o-1', parent: message }
          )
        }
      }
    }
  })
  const baggageSeen: Array<string | undefined> = []
  const second = createConsumer({
    transport,
    groupId: useGroup(t),
    topics: [invoices],
    middleware: [tracing.middleware],
    routes: {
      invoice_requested: {
        handler: () => {
          baggageSeen.push(propagation.getBaggage(context.active())?.getEntry('tenant')?.value)
        }
      }
    }
  })
  await first.start()
  await second.start()
  cleanup(t, () => first.stop())
  cleanup(t, () => second.stop())

  const tracer = trace.getTracer('test')
  const baggage = propagation.createBaggage({ tenant: { value: 'acme' } })
  const rootTraceId = await context.with(propagation.setBaggage(context.active(), baggage), () =>
    tracer.startActiveSpan('checkout', async (root) => {
      await producer.send('order_placed', { order: 'o-1' }, { topic: orders, key: 'o-1' })
      root.end()
      return root.spanContext().traceId
    })
  )
  await waitFor(() => baggageSeen.length === 1, { timeout: 30_000, description: 'the second hop' })
  await waitFor(() => exporter.getFinishedSpans().length >= 5, { timeout: 5_000, description: 'five spans' })

  const spans = exporter.getFinishedSpans()
  const byName = (name: string) => {
    const span = spans.find((s) => s.name === name)
    assert.ok(span, `span "${name}" among ${spans.map((s) => s.name).join(', ')}`)
    return span
  }
  const sendOrder = byName(`send ${orders}`)
  const processOrder = byName(`process ${orders}`)
  const sendInvoice = byName(`send ${invoices}`)
  const processInvoice = byName(`process ${invoices}`)
  for (const span of [sendOrder, processOrder, sendInvoice, processInvoice]) {
    assert.equal(span.spanContext().traceId, rootTraceId, `${span.name} is in the trace the producer started`)
  }
  const parentOf = (span: typeof sendOrder) => span.parentSpanContext?.spanId
  assert.equal(parentOf(sendOrder), byName('checkout').spanContext().spanId)
  assert.equal(
    parentOf(processOrder),
    sendOrder.spanContext().spanId,
    'the consumer span is a child of the producer span'
  )
  assert.equal(
    parentOf(sendInvoice),
    processOrder.spanContext().spanId,
    'what the handler produces is a child of its consumer span'
  )
  assert.equal(parentOf(processInvoice), sendInvoice.spanContext().spanId)
  assert.equal(
    processOrder.links[0]?.context.spanId,
    sendOrder.spanContext().spanId,
    'the consumer span links to the producer span'
  )
  assert.equal(processOrder.attributes['messaging.destination.name'], orders)
  assert.equal(processOrder.attributes['messaging.operation.type'], 'process')
  assert.equal(sendOrder.attributes['messaging.system'], 'kafka')
  assert.deepEqual(baggageSeen, ['acme'], 'W3C baggage travels in the headers')
})
