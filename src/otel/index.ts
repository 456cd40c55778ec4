/**
 * OpenTelemetry tracing for Conveyor, on `@opentelemetry/api` only: the application brings
 * its SDK (tracer provider, context manager, W3C propagators) and registers it globally.
 *
 *   import { conveyorTracing } from '@conveyorjs/conveyor/otel'
 *   const tracing = conveyorTracing()
 *   tracing.enable()                                   // producer spans, trace context in headers
 *   createConsumer({ …, middleware: [tracing.middleware] }) // consumer spans, handlers run in them
 *
 * Producing a record starts a PRODUCER span (`send <topic>`) as a child of the active
 * context and writes its context into the record's headers (`traceparent`, `tracestate`,
 * `baggage`). Handling a record starts a CONSUMER span (`process <topic>`) whose parent is
 * the context found in the headers (one trace across hops) and which links to it; the
 * handler runs inside it, so what it produces continues the same trace.
 */
import {
  type Context,
  context,
  type Link,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
  trace
} from '@opentelemetry/api'
import type { Handler, Middleware } from '../core/message.ts'
import { type ProducerSendEvent, producerSendChannel } from '../instrumentation/channels.ts'

const setter: TextMapSetter<Map<string, string | Buffer>> = {
  set: (carrier, key, value) => {
    carrier.set(key, value)
  }
}

const getter: TextMapGetter<ReadonlyMap<string, Buffer>> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key)?.toString('utf8')
}

/** What `conveyorTracing` returns: the consumer middleware and the switch for producer spans. */
export interface ConveyorTracing {
  /** Consumer middleware: a CONSUMER span around every attempt of every route. */
  middleware: Middleware
  /** Starts producer spans and header injection; returns a function that stops them. */
  enable(): () => void
}

/**
 * OpenTelemetry tracing for Conveyor, with spans from `tracer` (default: `trace.getTracer('conveyor')`,
 * the globally registered provider's). Producer spans start at `enable()`; consumer spans where
 * `middleware` is installed.
 */
export function conveyorTracing({
  tracer = trace.getTracer('conveyor')
}: {
  tracer?: Tracer
} = {}): ConveyorTracing {
  const producerSpans = new WeakMap<ProducerSendEvent, Span>()

  const onStart = (message: unknown) => {
    const event = message as ProducerSendEvent
    const span = tracer.startSpan(
      `send ${event.topic}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'send',
          'messaging.destination.name': event.topic,
          'conveyor.message.type': event.type,
          ...(typeof event.key === 'string' ? { 'messaging.kafka.message.key': event.key } : {})
        }
      },
      context.active()
    )
    producerSpans.set(event, span)
    propagation.inject(trace.setSpan(context.active(), span), event.headers, setter)
  }
  const onEnd = (message: unknown) => {
    const event = message as ProducerSendEvent
    const span = producerSpans.get(event)
    if (!span) return
    if (event.result) {
      span.setAttribute('messaging.destination.partition.id', String(event.result.partition))
      span.setAttribute('messaging.kafka.offset', Number(event.result.offset))
    }
    if (event.error) {
      span.recordException(event.error as Error)
      span.setStatus({ code: SpanStatusCode.ERROR, message: (event.error as Error).message })
    }
    span.end()
    producerSpans.delete(event)
  }

  const middleware: Middleware = <T>(next: Handler<T>): Handler<T> =>
    async function traced(message, handlerContext) {
      const parent: Context = propagation.extract(context.active(), message.headers, getter)
      const remote = trace.getSpanContext(parent)
      const links: Link[] = remote ? [{ context: remote }] : []
      const span = tracer.startSpan(
        `process ${message.topic}`,
        {
          kind: SpanKind.CONSUMER,
          links,
          attributes: {
            'messaging.system': 'kafka',
            'messaging.operation.type': 'process',
            'messaging.operation.name': 'process',
            'messaging.destination.name': message.topic,
            'messaging.destination.partition.id': String(message.partition),
            'messaging.kafka.offset': Number(message.offset),
            'messaging.consumer.group.name': handlerContext.groupId,
            'messaging.message.id': message.envelope.id,
            'conveyor.message.type': message.type,
            'conveyor.attempt': message.attempt,
            ...(message.keyString !== null ? { 'messaging.kafka.message.key': message.keyString } : {})
          }
        },
        parent
      )
      try {
        return await context.with(trace.setSpan(parent, span), () => next(message, handlerContext))
      } catch (error) {
        span.recordException(error as Error)
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message })
        throw error
      } finally {
        span.end()
      }
    }

  return {
    middleware,
    enable() {
      producerSendChannel.start.subscribe(onStart)
      producerSendChannel.asyncEnd.subscribe(onEnd)
      return () => {
        producerSendChannel.start.unsubscribe(onStart)
        producerSendChannel.asyncEnd.unsubscribe(onEnd)
      }
    }
  }
}

export type { Envelope } from '../core/envelope.ts'
export type { Handler, HandlerContext, Message, Middleware } from '../core/message.ts'
