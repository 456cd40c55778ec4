/**
 * The replicator's seam to the store it writes: a sink that applies a partition's events
 * and records how far the partition got *in the same write*, behind a fence.
 *
 * - `acquire` takes a partition for this member. It hands back a token and the partition's
 *   position in the sink (the offset after the last event applied there). Taking it fences
 *   out every earlier owner: their writes fail with {@link FencedError} from then on.
 * - `write` applies consecutive events of one partition and records `next` as its position,
 *   atomically, if the token still holds. Either all of it happens or none of it.
 *
 * The sink's position, not the group's committed offset, is where a new owner starts: a
 * crash between the write and the Kafka commit replays nothing that was applied, and a
 * member that lost its partition without noticing (paused past its session timeout, say)
 * cannot write over its successor. That is what makes replication exactly once.
 */
import { ConveyorError, ErrorCodes } from '../core/errors.ts'
import type { TopicPartition } from '../transport/types.ts'

/** An event to apply: a decoded record of one partition. */
export interface ReplicaEvent<T> {
  /** The topic it was read from. */
  readonly topic: string
  /** Its partition. */
  readonly partition: number
  /** Its offset in the partition. */
  readonly offset: bigint
  /** The record's key bytes, or `null`. */
  readonly key: Buffer | null
  /** The record's headers. */
  readonly headers: ReadonlyMap<string, Buffer>
  /** The decoded value. */
  readonly value: T
}

/** What `acquire` gives: the fence token of this ownership and where the partition goes on. */
export interface Acquired<Token> {
  /** Sent with each write of this ownership; stale once another member acquires the partition. */
  token: Token
  /** The offset after the last event applied in the sink; `undefined` when it has none (the group's offset applies). */
  next: bigint | undefined
}

/** A store the replicator writes through, fenced per partition. */
export interface FencedSink<T, Token = unknown> {
  /** Takes the partition: earlier owners' writes fail from now on. Safe to call again (each call is a new ownership). */
  acquire(partition: TopicPartition, signal: AbortSignal): Promise<Acquired<Token>>
  /**
   * Applies `events` (consecutive, of `partition`, in offset order; possibly none) and
   * records `next` as the partition's position, in one atomic write, if `token` is still
   * the partition's. Throws {@link FencedError} when another owner has taken it since.
   * Events below the recorded position are already applied and must be left out.
   */
  write(
    partition: TopicPartition,
    events: readonly ReplicaEvent<T>[],
    next: bigint,
    token: Token
  ): Promise<void>
}

/**
 * Where an operator's requests to skip one invalid event are kept, for a replicator that
 * blocks on invalid input (`onInvalid: 'block'`): the blocked partition asks, now and then,
 * whether its event may go (to the dead-letter topic) so the partition goes on.
 */
export interface SkipRequests {
  /** Asks that the event at `offset` of `partition` be dead-lettered and skipped. */
  request(partition: TopicPartition, offset: bigint): Promise<void>
  /** Whether that has been asked. */
  requested(partition: TopicPartition, offset: bigint): Promise<boolean>
}

/** A write refused because another member has taken the partition since this one acquired it. */
export class FencedError extends ConveyorError {
  constructor(partition: TopicPartition, detail: string) {
    super(
      ErrorCodes.FENCED,
      `${partition.topic}[${partition.partition}] is no longer this member's to write: ${detail}`
    )
    this.name = 'FencedError'
  }
}
