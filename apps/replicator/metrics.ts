/**
 * The replicator's own metrics, beside the service's `conveyor_*` ones, from the runtime's
 * diagnostics channels (one group's events). With `names: 'rbac'` they keep the names of the
 * seed team's consumer, so its dashboards and alerts work unchanged:
 *
 * | metric (prefix `conveyor_replicator_` or `rbac_kafka_consumer_`) | labels |
 * |---|---|
 * | `messages_processed_total` | `message_type` (relations, tombstone, debezium for undecodable), `status` (success, skipped, dead_lettered) |
 * | `message_processing_duration_seconds` | `message_type` |
 * | `validation_errors_total` | `error_type` (the DLQ reason) |
 * | `retry_attempts_total` | `retry_reason` (the error's code or class), `attempt_number` (1–9, then 10+) |
 * | `message_retry_duration_seconds` | `retry_reason`: from the first attempt to success, for events that were retried |
 * | `fencing_rejections_total` | writes the fence refused (another member took the partition) |
 * | `blocked_partitions` (gauge) | partitions whose next event waits for a retry, or (`onInvalid: block`) for an operator |
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import {
  Channels,
  type DeadLetteredEvent,
  type ErrorEvent,
  type MessageHandledEvent,
  type MessageRetryEvent,
  type PartitionsEvent
} from '../../src/instrumentation/channels.ts'

export type MetricNames = 'conveyor' | 'rbac'

const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

/** Why an attempt failed, as a bounded label: the error's code, else its class. */
function reasonOf(error: unknown): string {
  const code = (error as { code?: unknown })?.code
  if (typeof code === 'string' && /^[\w.-]{1,64}$/.test(code)) return code
  return error instanceof Error ? error.name : 'unknown'
}

/** Registers the metrics and subscribes; returns the unsubscribe. */
export function replicatorMetrics(
  registry: Registry,
  groupId: string,
  names: MetricNames = 'conveyor'
): () => void {
  const prefix = names === 'rbac' ? 'rbac_kafka_consumer_' : 'conveyor_replicator_'
  const registers = [registry]
  const processed = new Counter({
    name: `${prefix}messages_processed_total`,
    help: 'Change events processed, by message type and status.',
    labelNames: ['message_type', 'status'],
    registers
  })
  const duration = new Histogram({
    name: `${prefix}message_processing_duration_seconds`,
    help: 'Time from the first attempt to the outcome, by message type.',
    labelNames: ['message_type'],
    buckets,
    registers
  })
  const validation = new Counter({
    name: `${prefix}validation_errors_total`,
    help: 'Events refused as invalid (dead-lettered), by error type.',
    labelNames: ['error_type'],
    registers
  })
  const retries = new Counter({
    name: `${prefix}retry_attempts_total`,
    help: 'Failed attempts that are retried, by reason and attempt number.',
    labelNames: ['retry_reason', 'attempt_number'],
    registers
  })
  const retryDuration = new Histogram({
    name: `${prefix}message_retry_duration_seconds`,
    help: 'Time spent on events that needed retries, from the first attempt to success.',
    labelNames: ['retry_reason'],
    buckets,
    registers
  })
  const fenced = new Counter({
    name: `${prefix}fencing_rejections_total`,
    help: 'Writes refused by the fence: another member had taken the partition.',
    registers
  })
  const blocked = new Gauge({
    name: `${prefix}blocked_partitions`,
    help: 'Partitions whose next event waits for a retry.',
    registers
  })
  /** Partitions with an event in retries, by topic:partition. */
  const waiting = new Set<string>()
  /** The last retry reason of each event being retried, by topic:partition:offset. */
  const lastReason = new Map<string, string>()
  const key = (r: { topic: string; partition: number; offset: bigint }) =>
    `${r.topic}:${r.partition}:${r.offset}`
  const handlers: Array<[string, (message: unknown) => void]> = [
    [
      Channels.messageHandled,
      (m) => {
        const event = m as MessageHandledEvent
        if (event.groupId !== groupId) return
        const type =
          event.record.value === null
            ? 'tombstone'
            : event.outcome === 'dead-lettered' && !event.message
              ? 'debezium'
              : 'relations'
        const status =
          event.outcome === 'dead-lettered' ? 'dead_lettered' : type === 'tombstone' ? 'skipped' : 'success'
        processed.inc({ message_type: type, status })
        duration.observe({ message_type: type }, event.duration / 1_000)
        if (waiting.delete(`${event.record.topic}:${event.record.partition}`)) blocked.set(waiting.size)
        const reason = lastReason.get(key(event.record))
        if (reason !== undefined) {
          lastReason.delete(key(event.record))
          if (event.outcome === 'processed')
            retryDuration.observe({ retry_reason: reason }, event.duration / 1_000)
        }
      }
    ],
    [
      Channels.messageRetry,
      (m) => {
        const event = m as MessageRetryEvent
        if (event.groupId !== groupId) return
        const reason = reasonOf(event.error)
        lastReason.set(key(event.message), reason)
        waiting.add(`${event.message.topic}:${event.message.partition}`)
        blocked.set(waiting.size)
        retries.inc({
          retry_reason: reason,
          attempt_number: event.attempt >= 10 ? '10+' : String(event.attempt)
        })
      }
    ],
    [
      Channels.revoked,
      (m) => {
        const event = m as PartitionsEvent
        if (event.groupId !== groupId) return
        for (const { topic, partition } of event.partitions) waiting.delete(`${topic}:${partition}`)
        blocked.set(waiting.size)
      }
    ],
    [
      Channels.deadLettered,
      (m) => {
        const event = m as DeadLetteredEvent
        if (event.groupId === groupId) validation.inc({ error_type: event.reason })
      }
    ],
    [
      Channels.error,
      (m) => {
        const event = m as ErrorEvent
        if (event.groupId !== groupId) return
        if (event.context === 'fenced') fenced.inc()
        if (event.context === 'blocked' && event.partition) {
          waiting.add(`${event.partition.topic}:${event.partition.partition}`)
          blocked.set(waiting.size)
        }
      }
    ]
  ]
  for (const [name, handler] of handlers) subscribe(name, handler)
  return () => {
    for (const [name, handler] of handlers) unsubscribe(name, handler)
  }
}
