/**
 * The pipeline's two services, each a Conveyor consumer that produces what it derives:
 *
 * - **ingestion** reads every recorded metric from `airis-mon.metrics.recorded.v1`, keeps the
 *   `inference_latency` ones and publishes them, keyed by model, to
 *   `airis-mon.metrics.inference-latency.v1`; scale it out by running more instances in its
 *   group (they share the six partitions);
 * - **alerter** reads the latencies and publishes an `alert_triggered` to
 *   `airis-mon.alerts.triggered.v1` for each one over its threshold.
 *
 * Every event is sent with `parent: message`: its envelope names the message that caused it
 * (`ce_causationid`) and keeps the id of the one that started the exchange (`ce_correlationid`),
 * and, with tracing enabled, its `traceparent` continues the trace across both services.
 */
import {
  type ConveyorConsumer,
  createConsumer,
  createProducer,
  type Middleware,
  type Transport
} from '@conveyorjs/conveyor'
import { topics } from './topics.ts'

export interface PipelineEvents {
  metric_recorded: { name: string; model: string; value: number; at: number }
  inference_latency_recorded: { model: string; ms: number; at: number }
  alert_triggered: { model: string; ms: number; threshold: number; at: number }
}

interface ServiceOptions {
  transport: Transport
  groupId?: string
  /** Consumer middleware, e.g. `conveyorTracing().middleware`. */
  middleware?: Middleware[]
  /** Where a new group starts: the oldest record (default) or the end. */
  fromBeginning?: boolean
}

/** Options of the ingestion service. */
interface IngestionOptions extends ServiceOptions {
  /** Told of every recorded metric once it is handled (for a metric of your own, or a test). */
  onMetric?: (metric: PipelineEvents['metric_recorded']) => void
}

/** A running service: its consumer, and `stop()` (drain, commit, then flush what it produced). */
export interface PipelineService {
  consumer: ConveyorConsumer
  /** Messages its handler was called for. */
  handled: { count: number }
  stop(): Promise<void>
}

/** A service from its consumer and the producer it sends with: stopping drains, then flushes. */
function running(
  consumer: ConveyorConsumer,
  producer: { close(): Promise<void> },
  handled: { count: number }
) {
  const stop = async () => {
    await consumer.stop()
    await producer.close()
  }
  return { consumer, handled, stop }
}

export function createIngestion({
  transport,
  groupId = 'airis-mon-ingestion',
  middleware = [],
  fromBeginning = true,
  onMetric
}: IngestionOptions): PipelineService {
  const producer = createProducer<PipelineEvents>({
    transport,
    topic: topics.latency,
    source: 'urn:service:ingestion'
  })
  const handled = { count: 0 }
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topics.recorded],
    ordering: 'key',
    fromBeginning,
    middleware,
    routes: {
      metric_recorded: {
        handler: async (message) => {
          handled.count += 1
          const metric = message.value as PipelineEvents['metric_recorded']
          if (metric.name === 'inference_latency')
            await producer.send(
              'inference_latency_recorded',
              { model: metric.model, ms: metric.value, at: metric.at },
              { key: metric.model, parent: message }
            )
          onMetric?.(metric)
        }
      }
    }
  })
  return running(consumer, producer, handled)
}

export function createAlerter({
  transport,
  groupId = 'airis-mon-alerter',
  middleware = [],
  fromBeginning = true,
  threshold = 800
}: ServiceOptions & { threshold?: number }): PipelineService {
  const producer = createProducer<PipelineEvents>({
    transport,
    topic: topics.alerts,
    source: 'urn:service:alerter'
  })
  const handled = { count: 0 }
  const consumer = createConsumer({
    transport,
    groupId,
    topics: [topics.latency],
    fromBeginning,
    middleware,
    routes: {
      inference_latency_recorded: {
        handler: async (message) => {
          handled.count += 1
          const latency = message.value as PipelineEvents['inference_latency_recorded']
          if (latency.ms <= threshold) return
          await producer.send(
            'alert_triggered',
            { model: latency.model, ms: latency.ms, threshold, at: Date.now() },
            { key: latency.model, parent: message }
          )
        }
      }
    }
  })
  return running(consumer, producer, handled)
}
