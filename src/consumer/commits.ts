/**
 * Commits: making durable how far each partition has finished.
 *
 * The runtime decides *what* may be committed — per partition, the offset below which
 * every delivered record has finished (`PartitionProgress.committable`) — and *when*:
 * every `commitInterval`, after a revocation's drain, and at stop. A {@link CommitStrategy}
 * decides *how*: the consumer group's offsets in Kafka (the default, `groupOffsets`), or,
 * for the applications that need it, a Kafka transaction or the sink's own table.
 */
import { commitChannel, errorChannel } from '../instrumentation/channels.ts'
import { partitionKey, type RecordPosition, type Subscription } from '../transport/types.ts'
import type { PartitionState } from './partition.ts'

/**
 * How a consumer makes its finished offsets durable. The runtime calls `commit` one call
 * at a time (never two at once), with, per partition, the next offset to read after a
 * restart; a partition appears only when its offset moved since the last successful commit.
 * Resolving means the offsets are durable; rejecting means they are not (they are offered
 * again, with whatever finished since, at the next commit).
 */
export interface CommitStrategy {
  /**
   * Makes `offsets` durable. `subscription` is the consumer's current group membership
   * (it changes when the consumer joins again), for strategies that commit through it.
   */
  commit(offsets: readonly RecordPosition[], subscription: Subscription): Promise<void>
}

/** The default strategy: the offsets are committed for the consumer group (Kafka's OffsetCommit). */
export const groupOffsets: CommitStrategy = {
  commit: (offsets, subscription) => subscription.commit([...offsets])
}

/** Runs the commits of one consumer through its strategy, one at a time. */
export class Committer {
  readonly #groupId: string
  readonly #strategy: CommitStrategy
  readonly #subscription: () => Subscription | undefined
  #committing: Promise<void> | undefined

  constructor(groupId: string, strategy: CommitStrategy, subscription: () => Subscription | undefined) {
    this.#groupId = groupId
    this.#strategy = strategy
    this.#subscription = subscription
  }

  /**
   * Commits what the partitions have finished. Never rejects: a failed commit is reported
   * on the error channel and tried again next time with the offsets reached by then.
   */
  async commit(states: Iterable<PartitionState>): Promise<void> {
    // One commit at a time; a caller that arrives during one waits for it, then commits
    // what it asked for (a revocation's final commit must not be skipped).
    while (this.#committing) await this.#committing.catch(() => {})
    const offsets: RecordPosition[] = []
    const byKey = new Map<string, PartitionState>()
    for (const state of states) {
      const offset = state.progress.committable()
      if (offset !== undefined) {
        offsets.push({ ...state.tp, offset })
        byKey.set(state.key, state)
      }
    }
    const subscription = this.#subscription()
    if (offsets.length === 0 || !subscription) return
    const groupId = this.#groupId
    const started = performance.now()
    this.#committing = this.#strategy
      .commit(offsets, subscription)
      .then(
        () => {
          for (const { topic, partition, offset } of offsets) {
            byKey.get(partitionKey(topic, partition))?.progress.committed(offset)
          }
          if (commitChannel.hasSubscribers) {
            commitChannel.publish({ groupId, offsets, duration: performance.now() - started })
          }
        },
        (error: unknown) => {
          commitChannel.publish({ groupId, offsets, duration: performance.now() - started, error })
          throw error
        }
      )
      .finally(() => {
        this.#committing = undefined
      })
    return this.#committing.catch((error) => {
      errorChannel.publish({ groupId, error, fatal: false, context: 'commit' })
    })
  }
}
