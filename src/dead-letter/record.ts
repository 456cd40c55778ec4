import { sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { InboundRecord, OutboundRecord } from '../transport/types.ts'
import { packageRoot } from '../util/package-root.ts'

/** Headers Conveyor adds to a dead-lettered record (the original headers are kept too). */
export const DeadLetterHeaders = {
  sourceTopic: 'dlq_source_topic',
  sourcePartition: 'dlq_source_partition',
  sourceOffset: 'dlq_source_offset',
  sourceTimestamp: 'dlq_source_timestamp',
  consumerGroup: 'dlq_consumer_group',
  reason: 'dlq_reason',
  errorClass: 'dlq_error_class',
  errorMessage: 'dlq_error_message',
  errorStack: 'dlq_error_stack',
  attempts: 'dlq_attempts',
  firstFailureTime: 'dlq_first_failure_time',
  lastFailureTime: 'dlq_last_failure_time',
  /**
   * The failure's identity, `<group>/<source topic>/<partition>/<offset>`: the same for every
   * copy of one source record dead-lettered again after a crash or rebalance, so tools show
   * and replay it once (see `deadLetterId`).
   */
  id: 'dlq_id'
} as const

/**
 * The identity of a dead-lettered source record. The attempt count is left out: a record
 * dead-lettered again after a crash, under a retry policy changed meanwhile, is still the
 * same failure of the same record.
 */
export function deadLetterId(groupId: string, topic: string, partition: number, offset: bigint): string {
  return `${groupId}/${topic}/${partition}/${offset}`
}

/** Stacks are cut to this many characters: enough to find the frame, small enough for a header. */
export const maxStackLength = 4_000

/** Conveyor's own folder (`…/node_modules/<package>/` once installed), with a trailing slash. */
const conveyorRoot = `${packageRoot(import.meta.url)}${sep}`

/**
 * A stack without the machine's absolute paths: frames in Conveyor's package are named
 * relative to it, frames under the working directory (the service's own code) relative to
 * that. A DLQ record travels to other teams and tools; where the install lives is not theirs
 * to know, and the paths only made the header long.
 */
export function relativeStack(stack: string, cwd = `${process.cwd()}${sep}`): string {
  let result = stack
  for (const root of [conveyorRoot, cwd].sort((a, b) => b.length - a.length)) {
    if (root === sep) continue
    result = result.replaceAll(pathToFileURL(root).href, '').replaceAll(root, '')
  }
  return result
}

export interface DeadLetterDetails {
  topic: string
  groupId: string
  reason: string
  error: unknown
  attempts: number
  firstFailure: Date
  lastFailure: Date
}

/**
 * The DLQ record for `record`: its key and value bytes untouched, its headers, and the
 * `dlq_*` headers saying where it came from and why it failed.
 */
export function deadLetterRecord(record: InboundRecord, details: DeadLetterDetails): OutboundRecord {
  const error = details.error as { name?: unknown; message?: unknown; stack?: unknown } | undefined
  const headers = new Map<string, Buffer | string>(record.headers)
  const add = (name: string, value: string) => headers.set(name, value)
  add(DeadLetterHeaders.sourceTopic, record.topic)
  add(DeadLetterHeaders.sourcePartition, String(record.partition))
  add(DeadLetterHeaders.sourceOffset, String(record.offset))
  add(DeadLetterHeaders.sourceTimestamp, new Date(record.timestamp).toISOString())
  add(DeadLetterHeaders.consumerGroup, details.groupId)
  add(DeadLetterHeaders.reason, details.reason)
  add(DeadLetterHeaders.errorClass, typeof error?.name === 'string' ? error.name : typeof details.error)
  add(
    DeadLetterHeaders.errorMessage,
    typeof error?.message === 'string' ? error.message : String(details.error)
  )
  if (typeof error?.stack === 'string')
    add(DeadLetterHeaders.errorStack, relativeStack(error.stack).slice(0, maxStackLength))
  add(DeadLetterHeaders.attempts, String(details.attempts))
  add(DeadLetterHeaders.firstFailureTime, details.firstFailure.toISOString())
  add(DeadLetterHeaders.lastFailureTime, details.lastFailure.toISOString())
  add(DeadLetterHeaders.id, deadLetterId(details.groupId, record.topic, record.partition, record.offset))
  return { topic: details.topic, key: record.key, value: record.value, headers }
}
