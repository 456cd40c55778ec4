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
import { encodeFinished } from '../offsets/finished-metadata.ts'
import { type CommitPosition, partitionKey, type Subscription } from '../transport/types.ts'
import type { PartitionState } from './partition.ts'

/**
 * How a consumer makes its finished offsets durable. The runtime calls `commit` one call
 * at a time (never two at once), with, per partition, the next offset to read after a
 * restart and, in `metadata`, which offsets above it have finished too; a partition appears
 * only when one of them changed since the last successful commit. Resolving means the
 * offsets are durable; rejecting means they are not (they are offered again, with whatever
 * finished since, at the next commit).
 */
export interface CommitStrategy {
  /**
   * Makes `offsets` durable. `subscription` is the consumer's current group membership
   * (it changes when the consumer joins again), for strategies that commit through it.
   */
  commit(offsets: readonly CommitPosition[], subscription: Subscription): Promise<void>
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
  /** Whether commits record the finished offsets above the commit point (`finishedMetadata`). */
  readonly #recordFinished: boolean
  /** The metadata last committed per partition. */
  readonly #metadata = new WeakMap<PartitionState, string>()
  #committing: Promise<void> | undefined

  constructor(
    groupId: string,
    strategy: CommitStrategy,
    subscription: () => Subscription | undefined,
    recordFinished = false
  ) {
    this.#groupId = groupId
    this.#strategy = strategy
    this.#subscription = subscription
    this.#recordFinished = recordFinished
  }

  /**
   * Commits what the partitions have finished. Never rejects: a failed commit is reported
   * on the error channel and tried again next time with the offsets reached by then.
   */
  async commit(states: Iterable<PartitionState>): Promise<void> {
    // One commit at a time; a caller that arrives during one waits for it, then commits
    // what it asked for (a revocation's final commit must not be skipped).
    while (this.#committing) await this.#committing.catch(() => {})
    const offsets: CommitPosition[] = []
    const byKey = new Map<string, PartitionState>()
    for (const state of states) {
      const position = this.#position(state)
      if (position !== undefined) {
        offsets.push(position)
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
          for (const { topic, partition, offset, metadata } of offsets) {
            const state = byKey.get(partitionKey(topic, partition))
            state?.progress.committed(offset)
            if (state && this.#recordFinished) this.#metadata.set(state, metadata ?? '')
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

  /**
   * What to commit for a partition: its commit point, with the finished offsets above it
   * when they are recorded; `undefined` when neither changed since the last commit.
   */
  #position(state: PartitionState): CommitPosition | undefined {
    const offset = state.progress.committable()
    if (!this.#recordFinished) return offset === undefined ? undefined : { ...state.tp, offset }
    const at = offset ?? state.progress.lastCommitted
    if (at === undefined) return undefined
    const metadata = encodeFinished(at, state.progress.finishedAbove(at))
    if (offset === undefined && metadata === (this.#metadata.get(state) ?? '')) return undefined
    return metadata === '' ? { ...state.tp, offset: at } : { ...state.tp, offset: at, metadata }
  }
}
