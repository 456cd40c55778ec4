/**
 * Prometheus metrics for the runtime, from its diagnostics channels (prom-client). Serve
 * `registry.metrics()` at `/metrics`. Alert rules and a Grafana dashboard that use these
 * names are in deploy/prometheus and deploy/grafana.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import {
  Channels,
  type CommitEvent,
  type DeadLetteredEvent,
  type MessageHandledEvent,
  type MessageRetryEvent,
  type PartitionsEvent,
  type ProducerSendEvent,
  type RegistryRequestEvent
} from './channels.ts'

export interface MetricsOptions {
  registry?: Registry
  /** Prefix of every metric name. Default `conveyor_`. */
  prefix?: string
}

export interface ConveyorMetrics {
  registry: Registry
  /** Stops updating the metrics. */
  disable(): void
}

const latencyBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export function enableMetrics({
  registry = new Registry(),
  prefix = 'conveyor_'
}: MetricsOptions = {}): ConveyorMetrics {
  const registers = [registry]
  const handled = new Counter({
    name: `${prefix}messages_total`,
    help: 'Messages handled, by outcome (processed, dead-lettered, ignored).',
    labelNames: ['topic', 'type', 'outcome'],
    registers
  })
  const duration = new Histogram({
    name: `${prefix}handling_duration_seconds`,
    help: 'Time from the first attempt to the outcome.',
    labelNames: ['topic', 'type'],
    buckets: latencyBuckets,
    registers
  })
  const retries = new Counter({
    name: `${prefix}retries_total`,
    help: 'Failed handler attempts that will be retried, by error class and attempt.',
    labelNames: ['topic', 'type', 'error', 'attempt'],
    registers
  })
  const deadLettered = new Counter({
    name: `${prefix}dead_lettered_total`,
    help: 'Records written to a dead-letter topic, by reason.',
    labelNames: ['topic', 'reason'],
    registers
  })
  const inFlight = new Gauge({
    name: `${prefix}in_flight`,
    help: 'Handler attempts running now.',
    labelNames: ['group'],
    registers
  })
  const commitLatency = new Histogram({
    name: `${prefix}commit_duration_seconds`,
    help: 'Offset commit latency.',
    labelNames: ['group'],
    buckets: latencyBuckets,
    registers
  })
  const commitFailures = new Counter({
    name: `${prefix}commit_failures_total`,
    help: 'Offset commits that failed.',
    labelNames: ['group'],
    registers
  })
  const rebalances = new Counter({
    name: `${prefix}rebalances_total`,
    help: 'Partition assignments received.',
    labelNames: ['group'],
    registers
  })
  const assigned = new Gauge({
    name: `${prefix}assigned_partitions`,
    help: 'Partitions this member owns.',
    labelNames: ['group'],
    registers
  })
  const sends = new Counter({
    name: `${prefix}producer_sends_total`,
    help: 'Records produced, by outcome.',
    labelNames: ['topic', 'outcome'],
    registers
  })
  const registryRequests = new Counter({
    name: `${prefix}registry_requests_total`,
    help: 'Schema registry requests, by endpoint and HTTP status (0: unreachable).',
    labelNames: ['method', 'endpoint', 'status'],
    registers
  })
  const registryCache = new Counter({
    name: `${prefix}registry_cache_total`,
    help: 'Schema lookups answered from the cache (hit) or the registry (miss).',
    labelNames: ['endpoint', 'result'],
    registers
  })
  const sendLatency = new Histogram({
    name: `${prefix}producer_send_duration_seconds`,
    help: 'Time until the broker acknowledged a record.',
    labelNames: ['topic'],
    buckets: latencyBuckets,
    registers
  })

  const sendStarted = new WeakMap<object, number>()
  const handlers: Record<string, (message: unknown) => void> = {
    [Channels.messageHandled]: (message) => {
      const event = message as MessageHandledEvent
      const type = event.message?.type ?? 'unknown'
      handled.inc({ topic: event.record.topic, type, outcome: event.outcome })
      duration.observe({ topic: event.record.topic, type }, event.duration / 1_000)
    },
    [Channels.messageRetry]: (message) => {
      const event = message as MessageRetryEvent
      const error = (event.error as { name?: string } | null)?.name ?? 'Error'
      retries.inc({
        topic: event.message.topic,
        type: event.message.type,
        error,
        attempt: String(event.attempt)
      })
    },
    [Channels.deadLettered]: (message) => {
      const event = message as DeadLetteredEvent
      deadLettered.inc({ topic: event.record.topic, reason: event.reason })
    },
    [Channels.commit]: (message) => {
      const event = message as CommitEvent
      if (event.error) commitFailures.inc({ group: event.groupId })
      else commitLatency.observe({ group: event.groupId }, event.duration / 1_000)
    },
    [Channels.assigned]: (message) => {
      const event = message as PartitionsEvent
      rebalances.inc({ group: event.groupId })
      assigned.set({ group: event.groupId }, event.partitions.length)
    },
    [Channels.registryRequest]: (message) => {
      const event = message as RegistryRequestEvent
      registryCache.inc({ endpoint: event.endpoint, result: event.cached ? 'hit' : 'miss' })
      if (!event.cached)
        registryRequests.inc({ method: event.method, endpoint: event.endpoint, status: String(event.status) })
    }
  }
  const handlerStart = (message: unknown) => inFlight.inc({ group: (message as { groupId: string }).groupId })
  const handlerDone = (message: unknown) => inFlight.dec({ group: (message as { groupId: string }).groupId })
  const sendStart = (message: unknown) => sendStarted.set(message as object, performance.now())
  const sendEnd = (message: unknown) => {
    const event = message as ProducerSendEvent
    sends.inc({ topic: event.topic, outcome: event.error ? 'error' : 'ok' })
    const started = sendStarted.get(event)
    if (started !== undefined && !event.error)
      sendLatency.observe({ topic: event.topic }, (performance.now() - started) / 1_000)
  }

  for (const [name, handler] of Object.entries(handlers)) subscribe(name, handler)
  subscribe(`tracing:${Channels.handler}:start`, handlerStart)
  subscribe(`tracing:${Channels.handler}:asyncEnd`, handlerDone)
  subscribe(`tracing:${Channels.producerSend}:start`, sendStart)
  subscribe(`tracing:${Channels.producerSend}:asyncEnd`, sendEnd)
  return {
    registry,
    disable() {
      for (const [name, handler] of Object.entries(handlers)) unsubscribe(name, handler)
      unsubscribe(`tracing:${Channels.handler}:start`, handlerStart)
      unsubscribe(`tracing:${Channels.handler}:asyncEnd`, handlerDone)
      unsubscribe(`tracing:${Channels.producerSend}:start`, sendStart)
      unsubscribe(`tracing:${Channels.producerSend}:asyncEnd`, sendEnd)
    }
  }
}
