/**
 * Every diagnostics channel Conveyor publishes on, in one place. Logging, metrics,
 * tracing and health subscribe here; the runtime never imports them.
 *
 *   import { subscribe } from 'node:diagnostics_channel'
 *   subscribe(Channels.messageHandled, (event) => …)
 */
import { channel, tracingChannel } from 'node:diagnostics_channel'
import type { Message } from '../core/message.ts'
import type { CommitPosition, InboundRecord, TopicPartition } from '../transport/types.ts'

/** The name of each diagnostics channel Conveyor publishes on (see `node:diagnostics_channel`). */
export const Channels = {
  /** A message finished: `processed`, `dead-lettered` or `ignored` (unknown type, ignore policy). */
  messageHandled: 'conveyor:message:handled',
  /** A handler attempt failed and will be retried after `delay` ms. */
  messageRetry: 'conveyor:message:retry',
  /** A record was written to a dead-letter topic. */
  deadLettered: 'conveyor:dead-letter:written',
  /** Writing to a dead-letter topic failed; it is retried. */
  deadLetterFailed: 'conveyor:dead-letter:failed',
  /** Offsets were committed (or the commit failed: `error`). */
  commit: 'conveyor:commit',
  /** The group gave this member a new set of partitions. */
  assigned: 'conveyor:partitions:assigned',
  /** Partitions were taken away; their finished work was committed. */
  revoked: 'conveyor:partitions:revoked',
  /** A partition hit its buffer bound; its further records are set aside for a re-read. */
  paused: 'conveyor:partition:paused',
  /** A paused partition is read again from its first set-aside offset. */
  resumed: 'conveyor:partition:resumed',
  /** The consumer started, is stopping, or stopped. */
  lifecycle: 'conveyor:consumer:lifecycle',
  /** An error the consumer contained (it keeps running) or that stopped it (`fatal`). */
  error: 'conveyor:consumer:error',
  /** Tracing channel around each handler attempt (start, end, asyncStart, asyncEnd, error). */
  handler: 'conveyor:handler',
  /** A schema registry request finished (`status` 0: unreachable), or was answered from the cache. */
  registryRequest: 'conveyor:registry:request',
  /** A fetch from the broker completed (with or without records): the fetch loop is alive. */
  fetch: 'conveyor:transport:fetch',
  /**
   * Tracing channel around each produced record. `start` subscribers may add headers (trace
   * context) before the record is sent; `asyncEnd` carries its partition and offset.
   */
  producerSend: 'conveyor:producer:send'
} as const

export interface MessageHandledEvent {
  groupId: string
  message: Message | undefined
  record: InboundRecord
  outcome: 'processed' | 'dead-lettered' | 'ignored'
  attempts: number
  /** Milliseconds from the first attempt to the end. */
  duration: number
}

export interface MessageRetryEvent {
  groupId: string
  message: Message
  error: unknown
  attempt: number
  delay: number
}

export interface DeadLetteredEvent {
  groupId: string
  record: InboundRecord
  topic: string
  reason: string
  error: unknown
  attempts: number
}

export interface DeadLetterFailedEvent {
  groupId: string
  record: InboundRecord
  topic: string
  error: unknown
}

export interface CommitEvent {
  groupId: string
  /** Per partition, the next offset to read and the metadata committed with it. */
  offsets: CommitPosition[]
  duration: number
  error?: unknown
}

export interface PartitionsEvent {
  groupId: string
  partitions: TopicPartition[]
}

export interface PausedEvent {
  groupId: string
  partition: TopicPartition
  /** The first record set aside. */
  offset: bigint
}

export interface ResumedEvent {
  groupId: string
  partition: TopicPartition
  from: bigint
}

export interface LifecycleEvent {
  groupId: string
  state: 'starting' | 'running' | 'stopping' | 'stopped'
}

export interface ErrorEvent {
  groupId: string
  error: unknown
  fatal: boolean
  context: string
  /** The partition concerned, when there is one (a replicator's `fenced` or `blocked`). */
  partition?: TopicPartition
}

export const messageHandledChannel = channel(Channels.messageHandled)
export const messageRetryChannel = channel(Channels.messageRetry)
export const deadLetteredChannel = channel(Channels.deadLettered)
export const deadLetterFailedChannel = channel(Channels.deadLetterFailed)
export const commitChannel = channel(Channels.commit)
export const assignedChannel = channel(Channels.assigned)
export const revokedChannel = channel(Channels.revoked)
export const pausedChannel = channel(Channels.paused)
export const resumedChannel = channel(Channels.resumed)
export const lifecycleChannel = channel(Channels.lifecycle)
export const errorChannel = channel(Channels.error)
/** Around each handler call; for a batch route, `message` is the batch's first and `batch` all of them. */
export const handlerChannel = tracingChannel<
  string,
  { message: Message; groupId: string; batch?: readonly Message[] }
>(Channels.handler)

export interface ProducerSendEvent {
  topic: string
  type: string
  key: string | Buffer | null
  /** The record's headers; a `start` subscriber may add to them. */
  headers: Map<string, string | Buffer>
  /** Set on `asyncEnd`. */
  result?: { partition: number; offset: bigint }
  error?: unknown
}

export const producerSendChannel = tracingChannel<string, ProducerSendEvent>(Channels.producerSend)

export interface RegistryRequestEvent {
  method: string
  /** The API path without ids, e.g. `schemas/ids`, `subjects/versions`. */
  endpoint: string
  status: number
  duration: number
  cached: boolean
}

export const registryRequestChannel = channel(Channels.registryRequest)

export interface FetchEvent {
  groupId: string
}

export const fetchChannel = channel(Channels.fetch)
