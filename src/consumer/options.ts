/**
 * The consumer's public options and status, and the check of the options made once at
 * construction (their defaults are in consumer.ts, beside the runtime that applies them).
 */
import type { Codec } from '../codec/json.ts'
import type { Middleware } from '../core/message.ts'
import type { ConveyorProducer } from '../producer/producer.ts'
import { check, checkTypeSource, type Routes, type TypeSource } from '../routing/routes.ts'
import type { Transport } from '../transport/types.ts'
import type { CommitStrategy } from './commits.ts'
import type { AssignmentListener } from './membership.ts'
import type { RetryWait } from './partition.ts'
import type { Ordering } from './scheduler.ts'
import type { TransactionalOptions } from './transactions.ts'

/** Options of `createConsumer`; `transport`, `groupId`, `topics` and `routes` are required. */
export interface ConsumerOptions {
  /** Broker the consumer reads from and writes dead letters to. */
  transport: Transport
  /** Consumer group to join; the committed offsets are the group's. */
  groupId: string
  /** Topics to consume (at least one). */
  topics: string[]
  /** Message type → route. */
  routes: Routes
  /** Lets handlers produce through `context.send`, with the envelope's causation set. */
  producer?: ConveyorProducer
  /** Middleware applied to every route, outside the route's own (tracing, logging, metrics). */
  middleware?: Middleware[]
  /** Where the type is read. Default: the payload field `message_type`. */
  typeFrom?: TypeSource
  /** Decodes values. Default: JSON objects. */
  codec?: Codec
  /**
   * `partition` (default): one message at a time per partition. `key`: one at a time per
   * key, keys in parallel. `unordered`: everything in parallel. All bounded by `concurrency`.
   */
  ordering?: Ordering
  /** Most messages handled at the same time. Default 16. */
  concurrency?: number
  /** A message whose type has no route: to the DLQ (default, reason `unknown_message_type`) or ignored. */
  unknownType?: 'dead-letter' | 'ignore'
  /** Dead-letter topic for a source topic, when the route names none. Default `<topic>.dlq`. */
  deadLetterTopic?: (topic: string) => string
  /** Create missing dead-letter topics at start. Default true. */
  createDeadLetterTopics?: boolean
  /** Where a group without committed offsets starts. Default true (the oldest record). */
  fromBeginning?: boolean
  /** How often finished offsets are committed, ms. Default 1000. */
  commitInterval?: number
  /**
   * Also commit as soon as this many records have finished since the last commit, at most
   * every 100 ms: under load a crash then handles at most about this many again, not a whole
   * `commitInterval` of work. 0 commits on the interval only. Default 200.
   */
  commitAfter?: number
  /** How long `stop()` and a revocation wait for in-flight handlers, ms. Default 30 000. */
  drainTimeout?: number
  /**
   * Messages queued or in flight in the whole consumer. Past it, a partition holding its
   * fair share (`maxBuffered` / assigned partitions) is paused: its further records are set
   * aside and read again once it has drained a quarter. Records of the fetch response being
   * delivered can overshoot by at most one fetch (the transport's `fetchMaxBytes`).
   * Default 10 000.
   */
  maxBuffered?: number
  /**
   * Messages a partition may hold (queued or in flight) while one of its messages waits
   * to be retried. Past it, the partition's further records are set aside (not kept in
   * memory) and read again when the retry succeeds or a quarter of these finished, so a
   * blocked partition — or, in key mode, a blocked key with up to three quarters of this
   * — never stops the others. Default 1 000.
   */
  maxBufferedPerPartition?: number
  /** Static membership: a stable id per instance (KIP-345). */
  groupInstanceId?: string
  /** `consumer` for the KIP-848 protocol; default `classic`. */
  groupProtocol?: 'classic' | 'consumer'
  /** Classic protocol: how long the broker keeps a member without heartbeats, ms. Default 30 000. */
  sessionTimeout?: number
  /** Classic protocol: how often the member sends a heartbeat, ms. Default 3 000. */
  heartbeatInterval?: number
  /** Classic protocol: how long a rebalance waits for members to join again, ms. Default 60 000. */
  rebalanceTimeout?: number
  /**
   * Hooks awaited around the ownership of each partition: before its first record is
   * handled, and after it is revoked and drained (see `AssignmentListener`). Default none.
   */
  assignmentListeners?: AssignmentListener[]
  /** How finished offsets are made durable. Default `groupOffsets` (the group's offsets in Kafka). */
  commitStrategy?: CommitStrategy
  /**
   * Record, with each commit, which offsets above the commit point have finished (in the
   * commit's metadata), and skip those an earlier owner finished when a partition is
   * assigned, so that a crash or rebalance re-handles far less. Default true.
   */
  finishedMetadata?: boolean
  /**
   * Exactly once with Kafka transactions: each handler call's `context.send` output (and each
   * dead letter) commits in one transaction with the partition's next offset, so `read_committed`
   * readers see every result once, across crashes and rebalances (docs/consumer.md,
   * "Transactions"). Needs `partition` ordering and the classic group protocol; the group's
   * offsets then move only through the transactions. Default off.
   */
  transactional?: boolean | TransactionalOptions
}

/** What `ConveyorConsumer.status()` reports (served at a service's `/status`). */
export interface ConsumerStatus {
  /** The consumer group. */
  groupId: string
  /** The consumer's {@link ConsumerState}. */
  state: string
  /** Records fetched and not yet finished, over all partitions. */
  buffered: number
  /** Each assigned partition: commit point, backlog, work in progress, and what waits to be retried. */
  partitions: Array<{
    topic: string
    partition: number
    committed: string | null
    buffered: number
    inFlight: number
    paused: boolean
    retrying: Array<Omit<RetryWait, 'offset'> & { offset: string }>
  }>
}

/** Where a consumer is in its life: `new` until `start()`, `stopped` after `stop()`. */
export type ConsumerState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped'

/** The options with their defaults applied. */
export type ResolvedOptions = ConsumerOptions &
  Required<
    Omit<
      ConsumerOptions,
      | 'groupInstanceId'
      | 'groupProtocol'
      | 'sessionTimeout'
      | 'heartbeatInterval'
      | 'rebalanceTimeout'
      | 'middleware'
      | 'producer'
      | 'transactional'
    >
  >

/** Checks the options once, at construction: a bad one fails with its field named. */
export function validate(merged: ResolvedOptions): void {
  check(typeof merged.transport === 'object' && merged.transport !== null, 'transport', 'is required')
  check(
    typeof merged.groupId === 'string' && merged.groupId.length > 0,
    'groupId',
    'must be a non-empty string'
  )
  check(Array.isArray(merged.topics) && merged.topics.length > 0, 'topics', 'must list at least one topic')
  for (const [i, t] of merged.topics.entries()) {
    check(typeof t === 'string' && t.length > 0, `topics[${i}]`, 'must be a topic name')
  }
  check(
    ['partition', 'key', 'unordered'].includes(merged.ordering),
    'ordering',
    'must be "partition", "key" or "unordered"'
  )
  check(
    ['dead-letter', 'ignore'].includes(merged.unknownType),
    'unknownType',
    'must be "dead-letter" or "ignore"'
  )
  checkTypeSource(merged.typeFrom, 'typeFrom')
  for (const field of [
    'concurrency',
    'commitInterval',
    'drainTimeout',
    'maxBuffered',
    'maxBufferedPerPartition'
  ] as const) {
    check(Number.isInteger(merged[field]) && merged[field] > 0, field, 'must be an integer > 0')
  }
  check(Array.isArray(merged.assignmentListeners), 'assignmentListeners', 'must be an array')
  for (const [i, listener] of merged.assignmentListeners.entries()) {
    check(
      typeof listener === 'object' &&
        listener !== null &&
        ['assigned', 'revoked'].every(
          (hook) =>
            listener[hook as keyof AssignmentListener] === undefined ||
            typeof listener[hook as keyof AssignmentListener] === 'function'
        ),
      `assignmentListeners[${i}]`,
      'must be an object whose assigned and revoked are functions'
    )
  }
  check(
    Number.isInteger(merged.commitAfter) && merged.commitAfter >= 0,
    'commitAfter',
    'must be an integer ≥ 0'
  )
  check(typeof merged.finishedMetadata === 'boolean', 'finishedMetadata', 'must be true or false')
  if (merged.transactional !== undefined && merged.transactional !== false) {
    check(
      merged.transactional === true ||
        (typeof merged.transactional === 'object' && merged.transactional !== null),
      'transactional',
      'must be true, false or { idPrefix, timeout }'
    )
    check(
      merged.ordering === 'partition',
      'transactional',
      'needs ordering "partition" (a transaction commits the offset after its message: every one before it must be done)'
    )
    check(merged.groupProtocol !== 'consumer', 'transactional', 'needs the classic group protocol')
    check(
      typeof merged.transport.transactional === 'function',
      'transactional',
      'the transport has no transactions'
    )
  }
  check(
    typeof merged.commitStrategy?.commit === 'function',
    'commitStrategy',
    'must have a commit(offsets, subscription) function'
  )
}
