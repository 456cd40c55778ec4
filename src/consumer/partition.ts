/**
 * What the runtime keeps for one owned partition. Every part of the runtime reads and
 * writes it: the scheduler counts what the partition holds, the failure path what waits
 * for a retry, flow control whether its tail is set aside, membership whether it is
 * still owned. It holds no behaviour of its own.
 */
import type { HandlerContext } from '../core/message.ts'
import type { FinishedRun } from '../offsets/finished-metadata.ts'
import { PartitionProgress } from '../offsets/partition-progress.ts'
import { partitionKey, type TopicPartition } from '../transport/types.ts'

/** How the handling of one record ended. `abandoned` work is neither finished nor committed. */
export type Outcome = 'processed' | 'dead-lettered' | 'ignored' | 'abandoned'

/** A message waiting to be retried, as `/status` and `conveyor lag --service` show it. */
export interface RetryWait {
  /** The message's offset. */
  offset: bigint
  /** The message's key (text), or null. */
  key: string | null
  /** The message's type. */
  type: string
  /** The attempt that failed last (1 = the first). */
  attempt: number
  /** When the next attempt starts (ISO 8601). */
  nextRetryAt: string
  /** The last attempt's error message. */
  error: string
}

export interface PartitionState {
  readonly key: string
  readonly tp: TopicPartition
  /** Replaced when an assignment listener moves the partition's start (see `Membership`). */
  progress: PartitionProgress
  /** Queued (not started) plus in flight. */
  buffered: number
  /** Handed to a handler (or taken into a run) and not yet settled. */
  inFlight: number
  /** Of those, taken into a run (batch routes) and not yet handed to a handler. */
  unstarted: number
  /** Every record from the first dropped one on is set aside until the rewind. */
  pausedTail: boolean
  /** Assignment listeners have not finished with it yet: no record is handled. */
  preparing: boolean
  /** Messages of this partition waiting for a retry (a whole batch retried counts each of its messages). */
  retrying: number
  /** What those messages are, for `status()`. */
  readonly retryWaits: Set<RetryWait>
  revoked: boolean
  /** The membership's count of assignments when this ownership began (see `Membership.reacquire`). */
  generation: number
  /** Aborted when the partition is revoked: retry waits end, abandoned work is not committed. */
  readonly revocation: AbortController
  /** Aborted at stop() or revocation: ends retry and DLQ waits. */
  readonly waits: AbortSignal
  /** Handed to handlers: aborted past the drain timeout or at revocation. */
  readonly handlerSignal: AbortSignal
  /** The handler context of this partition's messages (made once when no producer is given). */
  context?: HandlerContext
  /**
   * Offsets an earlier owner finished above its last commit point (read from the commit's
   * metadata at assignment): skipped, not handled again. Dropped once passed.
   */
  skip?: FinishedRun[]
}

/**
 * A new partition's state. `stopping` ends its waits with the consumer; `handlerAbort`
 * ends its handlers' signals past the drain timeout.
 */
export function newPartitionState(
  tp: TopicPartition,
  stopping: AbortSignal,
  handlerAbort: AbortSignal
): PartitionState {
  const revocation = new AbortController()
  return {
    key: partitionKey(tp.topic, tp.partition),
    tp: { topic: tp.topic, partition: tp.partition },
    progress: new PartitionProgress(tp.topic, tp.partition),
    buffered: 0,
    inFlight: 0,
    unstarted: 0,
    pausedTail: false,
    preparing: false,
    retrying: 0,
    retryWaits: new Set(),
    revoked: false,
    generation: 0,
    revocation,
    waits: AbortSignal.any([stopping, revocation.signal]),
    handlerSignal: AbortSignal.any([handlerAbort, revocation.signal])
  }
}
